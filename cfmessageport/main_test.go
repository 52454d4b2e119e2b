package cfmessageport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
)

// extraRoles holds the child roles other test files define (the pairing peers, and the
// CoreFoundation peers of the Darwin interop tests); their files add them in init.
var extraRoles = map[string]func(string) error{}

func TestMain(m *testing.M) {
	roles := map[string]func(string) error{}
	for _, role := range []string{"serve", "serveconc", "servepid", "rawserve"} {
		roles[role] = func(name string) error { return runChild(role, name) }
	}
	for role, run := range extraRoles {
		roles[role] = run
	}
	testproc.Main(m, roles)
}

// Message ids the echo handler understands.
const (
	msgEcho  = 1 // reply with the data
	msgSleep = 2 // sleep for the number of milliseconds in the data, then reply
	msgNone  = 3 // reply with no data
	msgCount = 4 // reply with how many one-way messages came so far, in decimal
)

// oneWays counts the one-way messages the echo handler has seen.
var oneWays atomic.Int64

// echo is the test service's handler.
var echo = cfmessageport.HandlerFunc(func(_ context.Context, req *cfmessageport.Message) ([]byte, error) {
	switch req.MsgID {
	case msgSleep:
		var ms int
		fmt.Sscan(string(req.Data), &ms)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return []byte("slept"), nil
	case msgNone:
		return nil, nil
	case msgCount:
		return []byte(strconv.FormatInt(oneWays.Load(), 10)), nil
	}
	if req.OneWay {
		oneWays.Add(1)
	}
	return req.Data, nil // valid until the reply is sent
})

// serveUntilStdinCloses is a child's server: it serves name with h, says "ready", and stops
// when the parent closes the child's stdin.
func serveUntilStdinCloses(name string, h cfmessageport.Handler, opts *cfmessageport.ServerOptions) error {
	srv, err := cfmessageport.Listen(name, h, opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

func runChild(role, name string) error {
	switch role {
	case "serve", "serveconc", "servepid":
		var opts *cfmessageport.ServerOptions
		switch role {
		case "serveconc":
			opts = &cfmessageport.ServerOptions{Concurrency: 8}
		case "servepid":
			opts = &cfmessageport.ServerOptions{PerPID: true}
		}
		return serveUntilStdinCloses(name, echo, opts)
	case "rawserve":
		// A raw mach echo service, the benchmarks' baseline: the same message shapes as CF's
		// (inline up to 4000 bytes, out-of-line above) without the protocol.
		port, err := mach.NewPort(mach.PortOptions{})
		if err != nil {
			return err
		}
		reg, err := bootstrap.Register(name, port, &bootstrap.Options{})
		if err != nil {
			return err
		}
		defer reg.Close()
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
		fmt.Println("ready")
		var m mach.Message
		for {
			if err := mach.Receive(context.Background(), reg.Port(), &m); err != nil {
				return err
			}
			reply, _ := m.TakeRemote().(*mach.SendOnceRight)
			out := &mach.Message{Remote: mach.MoveSendOnceOf(reply), ID: m.ID}
			if len(m.Descriptors) == 1 {
				if d, ok := m.Descriptors[0].(*mach.OOLDescriptor); ok {
					out.Descriptors = []mach.Descriptor{&mach.OOLDescriptor{Data: d.Data, Copy: mach.VirtualCopy}}
				}
			} else {
				out.Body = m.Body
			}
			if reply != nil && mach.Send(context.Background(), out) != nil {
				reply.Close()
			}
			_ = m.Destroy()
		}
	}
	return fmt.Errorf("unknown role %q", role)
}

type child = testproc.Child

// startChild starts a serving child and waits for it to be ready.
func startChild(t testing.TB, role, name string) *child {
	t.Helper()
	c := testproc.Start(t, role, name)
	if line := c.Line(t); line != "ready" {
		t.Fatalf("the child says %q", line)
	}
	return c
}

func uniqueName(t testing.TB) string { return testproc.UniqueName(t, "com.machport.cfmp") }

func ctxTimeout(t testing.TB, d time.Duration) context.Context { return testproc.Context(t, d) }

// killMidRequest SIGKILLs the child while request waits on it, and requires that the request
// fail with ErrBecameInvalid within a second of the kill, long before its own timeout. It returns
// when the kill was sent.
func killMidRequest(t *testing.T, c *child, request func() error) time.Time {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- request() }()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := c.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, cfmessageport.ErrBecameInvalid) {
			t.Fatalf("the request failed with %v, not ErrBecameInvalid", err)
		}
		if d := time.Since(start); d >= time.Second {
			t.Fatalf("the request failed %v after the kill", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the request still waits 10 s after its peer was killed")
	}
	return start
}
