package bootstrap_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/sandboxcheck"
)

// extraRoles holds the child roles of platform-only test files, added in their init.
var extraRoles = map[string]func(name string) error{}

func TestMain(m *testing.M) {
	roles := map[string]func(string) error{}
	for _, role := range []string{"serve", "race", "probe", "lookup"} {
		roles[role] = func(name string) error { return runChild(role, name) }
	}
	for role, run := range extraRoles {
		roles[role] = run
	}
	testproc.Main(m, roles)
}

// uniqueName is a service name no other test or run uses.
func uniqueName(t testing.TB) string { return testproc.UniqueName(t, "com.machport.test") }

func ctxTimeout(t testing.TB, d time.Duration) context.Context { return testproc.Context(t, d) }

// idEcho asks a serving child to answer on the reply right with the same body.
const idEcho = 7000

func runChild(role, name string) error {
	stdin := bufio.NewReader(os.Stdin)
	switch role {
	case "serve":
		// Register name, say so, and echo requests until killed or stdin closes.
		port, err := mach.NewPort(mach.PortOptions{})
		if err != nil {
			return err
		}
		reg, err := bootstrap.Register(name, port, &bootstrap.Options{PerPID: os.Getenv("PER_PID") != ""})
		if err != nil {
			return err
		}
		defer reg.Close()
		go func() { _, _ = io.Copy(io.Discard, stdin); os.Exit(0) }()
		fmt.Println("ready")
		for {
			var m mach.Message
			if err := mach.Receive(context.Background(), reg.Port(), &m); err != nil {
				return err
			}
			if reply, ok := m.TakeRemote().(*mach.SendOnceRight); ok && m.ID == idEcho {
				_ = mach.Send(context.Background(), &mach.Message{Remote: mach.MoveSendOnceOf(reply), ID: idEcho, Body: m.Body})
			}
			_ = m.Destroy()
		}
	case "race":
		// Wait for "go", register, report the outcome, hold the name until stdin closes.
		if _, err := stdin.ReadString('\n'); err != nil {
			return err
		}
		reg, outcome, err := tryRegister(name)
		if err != nil {
			return err
		}
		if reg != nil {
			defer reg.Close()
		}
		fmt.Println(outcome)
		_, _ = io.Copy(io.Discard, stdin)
		return nil
	case "lookup":
		// Look name up once and report the outcome: "ok", or which cause and the error.
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		s, err := bootstrap.LookUp(ctx, name)
		if err == nil {
			fmt.Println("ok")
			return s.Close()
		}
		fmt.Printf("unknown-service=%v: %v\n", errors.Is(err, bootstrap.ErrUnknownService), err)
		return nil
	case "probe":
		// Report what the sandbox says about registering name and what registering it does.
		sandboxed, _ := sandboxcheck.Sandboxed()
		allowed, aerr := sandboxcheck.Allowed(sandboxcheck.MachRegister, name)
		reg, outcome, err := tryRegister(name)
		if err != nil {
			return err
		}
		if reg != nil {
			defer reg.Close()
		}
		fmt.Printf("sandboxed=%v allowed=%v allowedErr=%v register=%s\n", sandboxed, allowed, aerr, outcome)
		return nil
	}
	return fmt.Errorf("unknown role %q", role)
}

// tryRegister registers name on a new port and says how it went: "ok" (with the registration)
// or "code N" for launchd's answer N; any other failure is an error.
func tryRegister(name string) (*bootstrap.Registration, string, error) {
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return nil, "", err
	}
	reg, err := bootstrap.Register(name, port, &bootstrap.Options{})
	if err == nil {
		return reg, "ok", nil
	}
	port.Close()
	var be *bootstrap.Error
	if errors.As(err, &be) && be.Code != 0 {
		return nil, fmt.Sprint("code ", int32(be.Code)), nil
	}
	return nil, "", err
}

type child = testproc.Child

func startChild(t *testing.T, role, name string, env ...string) *child {
	t.Helper()
	return testproc.Start(t, role, name, env...)
}

// eventually polls cond until it holds, for names that launchd withdraws asynchronously.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testproc.Eventually(t, what, 5*time.Second, cond)
}
