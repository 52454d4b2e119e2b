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

// A name can be registered once: the same process registering it again gets ErrServiceActive
// (1103), another process ErrNotPrivileged (1100). Closing the registration withdraws the name.
func ExampleRegister() {
	name := fmt.Sprintf("com.example.register.%d", os.Getpid())
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		panic(err)
	}
	reg, err := bootstrap.Register(name, port, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(reg.Name() == name)

	again, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		panic(err)
	}
	defer again.Close()
	_, err = bootstrap.Register(name, again, nil)
	fmt.Println(errors.Is(err, bootstrap.ErrServiceActive))
	fmt.Println(reg.Close())
	// Output:
	// true
	// true
	// <nil>
}

// A look-up waits no longer than its context, and says why it failed: here, nobody serves the
// name (1102).
func ExampleLookUp() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := bootstrap.LookUp(ctx, fmt.Sprintf("com.example.lookup.%d", os.Getpid()))
	var be *bootstrap.Error
	if errors.As(err, &be) {
		fmt.Println(be.Code, errors.Is(err, bootstrap.ErrUnknownService))
	}
	// Output: 1102 (0x44e) BOOTSTRAP_UNKNOWN_SERVICE: Unknown service name true
}
