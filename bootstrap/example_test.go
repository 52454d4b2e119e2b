package bootstrap_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/sandboxcheck"
)

// A service registers a name; a client looks it up and sends it a message. In a sandboxed app
// the name must start with one of the app's application groups.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	name := fmt.Sprintf("group.com.example.app.worker.%d", os.Getpid())

	// The service.
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		panic(err)
	}
	reg, err := bootstrap.Register(name, port, &bootstrap.Options{})
	if err != nil {
		panic(err)
	}
	defer reg.Close() // withdraws the name

	// The client.
	service, err := bootstrap.LookUp(ctx, name)
	if err != nil {
		panic(err)
	}
	if err := mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOf(service), ID: 1, Body: []byte("ping")}); err != nil {
		panic(err)
	}

	var m mach.Message
	if err := mach.Receive(ctx, reg.Port(), &m); err != nil {
		panic(err)
	}
	fmt.Printf("the service got %q\n", m.Body)
	_ = m.Destroy()

	// A name nobody serves: 1102. In a sandbox, a name outside the application groups would give
	// ErrNotPrivileged (1100) wrapping the *sandboxcheck.NameError that says which rule broke.
	_, err = bootstrap.LookUp(ctx, "com.example.nobody")
	fmt.Println(errors.Is(err, bootstrap.ErrUnknownService))
	var rule *sandboxcheck.NameError
	fmt.Println(errors.As(err, &rule))
	// Output:
	// the service got "ping"
	// true
	// false
}
