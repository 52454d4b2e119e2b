package bootstrap_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

// The test binary re-executes itself as a child process in one of these roles.
const (
	roleEnv = "MACHPORT_BOOTSTRAP_TEST_ROLE"
	nameEnv = "MACHPORT_BOOTSTRAP_TEST_NAME"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		if err := runChild(role, os.Getenv(nameEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(runTests(m))
}

// runTests gives the test run (and the children it starts, which inherit the environment) a
// private namespace directory where the platform has one to give.
func runTests(m *testing.M) int {
	if runtime.GOOS == "linux" && os.Getenv(bootstrapDirEnv) == "" {
		dir, err := os.MkdirTemp("", "machport-bootstrap-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		os.Setenv(bootstrapDirEnv, dir)
	}
	return m.Run()
}

const bootstrapDirEnv = "MACHPORT_BOOTSTRAP_DIR"

var nameSeq atomic.Int64

// uniqueName is a service name no other test or run uses.
func uniqueName(t testing.TB) string {
	return fmt.Sprintf("com.machport.test.%s.%d.%d", strings.ReplaceAll(t.Name(), "/", "."), os.Getpid(), nameSeq.Add(1))
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

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
		reg, err := bootstrap.Register(name, port, bootstrap.Options{PerPID: os.Getenv("PER_PID") != ""})
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
	reg, err := bootstrap.Register(name, port, bootstrap.Options{})
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

// child is a running child process of this test binary.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startChild(t *testing.T, role, name string, env ...string) *child {
	t.Helper()
	return startChildCommand(t, exec.Command(os.Args[0], "-test.run=^$"), role, name, env...)
}

// startChildCommand starts cmd, which runs this test binary (perhaps through a wrapper such as
// sandbox-exec), in role.
func startChildCommand(t *testing.T, cmd *exec.Cmd, role, name string, env ...string) *child {
	t.Helper()
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role, nameEnv+"="+name), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

func (c *child) line(t *testing.T) string {
	t.Helper()
	type result struct {
		s   string
		err error
	}
	got := make(chan result, 1)
	go func() { s, err := c.out.ReadString('\n'); got <- result{strings.TrimSpace(s), err} }()
	select {
	case r := <-got:
		require.NoError(t, r.err, "the child's output ended")
		return r.s
	case <-time.After(20 * time.Second):
		t.Fatal("no line from the child in 20 s")
		return ""
	}
}

// eventually polls cond until it holds, for names that launchd withdraws asynchronously.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after 5 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
