package cfmessageport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
)

// A service and a client of it: Listen serves a name with a handler, Dial looks it up, and
// Request waits for the reply. In the App Sandbox the name must begin with one of the app's
// application groups.
func Example() {
	ctx := context.Background()
	name := fmt.Sprintf("com.example.echo.%d", os.Getpid())
	srv, err := cfmessageport.Listen(name, cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
		return append([]byte("echo: "), req.Data...), nil
	}), nil)
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	remote, err := cfmessageport.Dial(ctx, name)
	if err != nil {
		panic(err)
	}
	defer remote.Close()
	reply, err := remote.Request(ctx, 1, []byte("hello"))
	fmt.Printf("%s %v\n", reply, err)
	// Output: echo: hello <nil>
}

// A handler sees who sent each request, from the message's audit trailer.
func ExampleListen() {
	ctx := context.Background()
	name := fmt.Sprintf("com.example.whoami.%d", os.Getpid())
	srv, err := cfmessageport.Listen(name, cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
		return []byte(fmt.Sprintf("pid %v", req.Sender.PID() == os.Getpid())), nil
	}), &cfmessageport.ServerOptions{Concurrency: 4})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	remote, err := cfmessageport.Dial(ctx, name)
	if err != nil {
		panic(err)
	}
	defer remote.Close()
	reply, _ := remote.Request(ctx, 1, nil)
	fmt.Printf("%s\n", reply)
	// Output: pid true
}

// Dialling a name nobody serves fails at once with launchd's 1102, whatever the reason: never
// registered, withdrawn, or its server gone.
func ExampleDial() {
	_, err := cfmessageport.Dial(context.Background(), fmt.Sprintf("com.example.nobody.%d", os.Getpid()))
	fmt.Println(errors.Is(err, bootstrap.ErrUnknownService))
	// Output: true
}

// A two-way connection: the client calls the server, and the server calls the client on the
// same connection.
func ExampleDialPair() {
	ctx := context.Background()
	name := fmt.Sprintf("com.example.pair.%d", os.Getpid())
	answer := func(who string) cfmessageport.Handler {
		return cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
			return []byte(who + " got " + string(req.Data)), nil
		})
	}
	l, err := cfmessageport.ListenPair(name, answer("the server"), nil)
	if err != nil {
		panic(err)
	}
	defer l.Close()
	client, err := cfmessageport.DialPair(ctx, name, answer("the client"), nil)
	if err != nil {
		panic(err)
	}
	defer client.Close()
	server, err := l.Accept(ctx)
	if err != nil {
		panic(err)
	}
	defer server.Close()

	reply, _ := client.Request(ctx, 1, []byte("a question"))
	fmt.Println(string(reply))
	reply, _ = server.Request(ctx, 1, []byte("one back"))
	fmt.Println(string(reply))
	// Output:
	// the server got a question
	// the client got one back
}

// A large reply read where it arrived: RequestFunc lends read the out-of-line memory instead of
// copying it, and releases it when read returns.
func ExampleRemote_RequestFunc() {
	ctx := context.Background()
	name := fmt.Sprintf("com.example.big.%d", os.Getpid())
	srv, err := cfmessageport.Listen(name, cfmessageport.HandlerFunc(
		func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
			return bytes.Repeat([]byte{'x'}, 1<<20), nil // 1 MiB: out of line
		}), nil)
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	remote, err := cfmessageport.Dial(ctx, name)
	if err != nil {
		panic(err)
	}
	defer remote.Close()

	var xs int
	err = remote.RequestFunc(ctx, 1, nil, func(reply []byte) error {
		xs = bytes.Count(reply, []byte{'x'}) // reply must not be kept past this call
		return nil
	})
	fmt.Println(xs, err)
	// Output: 1048576 <nil>
}

// A server that logs its handlers' failures, is told apart from one that stopped on its own, and
// stops gracefully: Shutdown answers what was queued, withdraws the name and waits for the
// handlers, and Close ends whatever Shutdown's deadline left running.
func ExampleServer_Shutdown() {
	ctx := context.Background()
	name := fmt.Sprintf("com.example.shutdown.%d", os.Getpid())
	srv, err := cfmessageport.Listen(name, cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
		return bytes.ToUpper(req.Data), nil
	}), &cfmessageport.ServerOptions{ErrorLog: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	remote, err := cfmessageport.Dial(ctx, name)
	if err != nil {
		panic(err)
	}
	defer remote.Close()
	reply, err := remote.Request(ctx, 1, []byte("hello"))
	fmt.Printf("%s %v\n", reply, err)

	select {
	case <-srv.Done():
		fmt.Println("stopped on its own:", srv.Err()) // its port was destroyed
	default:
		fmt.Println("serving")
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	fmt.Println(srv.Shutdown(sctx), errors.Is(srv.Err(), cfmessageport.ErrServerClosed))
	// Output:
	// HELLO <nil>
	// serving
	// <nil> true
}
