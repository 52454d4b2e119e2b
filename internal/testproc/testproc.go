// Package testproc runs a test binary's cross-process cases: the binary re-executes itself as a
// child in a named role, and the test talks to it through its stdin and stdout.
package testproc

import (
	"bufio"
	"context"
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
)

// The environment that tells a re-executed test binary which role to play, and for which name.
const (
	RoleEnv = "MACHPORT_TEST_ROLE"
	NameEnv = "MACHPORT_TEST_NAME"
)

// Main is TestMain's body. In a child it runs the role's function and exits (3 on error);
// otherwise it gives the run, and the children it starts, a private bootstrap namespace
// directory on Linux, and runs the tests.
func Main(m *testing.M, roles map[string]func(name string) error) {
	if role := os.Getenv(RoleEnv); role != "" {
		run, ok := roles[role]
		if !ok {
			fmt.Fprintf(os.Stderr, "child: unknown role %q\n", role)
			os.Exit(3)
		}
		if err := run(os.Getenv(NameEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if runtime.GOOS == "linux" && os.Getenv(bootstrap.EnvDir) == "" {
		dir, err := os.MkdirTemp("", "machport-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		os.Setenv(bootstrap.EnvDir, dir)
	}
	return m.Run()
}

// Child is a running child process of the test binary.
type Child struct {
	Cmd   *exec.Cmd
	Stdin io.WriteCloser // closing it asks the child to exit
	out   *bufio.Reader
}

// raceExitCode is the exit status of a process whose race detector found a data race.
const raceExitCode = 66

// Start runs the test binary as a child in role, for name, with extra environment.
func Start(t testing.TB, role, name string, env ...string) *Child {
	t.Helper()
	return StartCommand(t, exec.Command(os.Args[0], "-test.run=^$"), role, name, env...)
}

// StartCommand starts cmd, which runs the test binary (perhaps through a wrapper such as
// sandbox-exec), in role. At cleanup it closes the child's stdin and waits 5 s before killing it,
// and fails the test if the child's race detector found a data race.
func StartCommand(t testing.TB, cmd *exec.Cmd, role, name string, env ...string) *Child {
	t.Helper()
	cmd.Env = append(append(os.Environ(), RoleEnv+"="+role, NameEnv+"="+name), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
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
		// A child built with the race detector that found a data race still exits, at its end,
		// with status 66 (GORACE's exitcode): its report goes to stderr, and nothing else would
		// fail the test (bootstrap's agent had such a race, seen only in the logs).
		if code := cmd.ProcessState.ExitCode(); code == raceExitCode {
			t.Errorf("the child playing %s exited with status %d: the race detector's report is above", role, code)
		}
	})
	return &Child{Cmd: cmd, Stdin: stdin, out: bufio.NewReader(stdout)}
}

// Line returns the child's next line of output, failing the test after 20 s without one.
func (c *Child) Line(t testing.TB) string {
	t.Helper()
	type result struct {
		s   string
		err error
	}
	got := make(chan result, 1)
	go func() { s, err := c.out.ReadString('\n'); got <- result{strings.TrimSpace(s), err} }()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("the child's output ended: %v", r.err)
		}
		return r.s
	case <-time.After(20 * time.Second):
		t.Fatal("no line from the child in 20 s")
		return ""
	}
}

var nameSeq atomic.Int64

// UniqueName is a service name under prefix that no other test, process or run uses.
func UniqueName(t testing.TB, prefix string) string {
	return fmt.Sprintf("%s.%s.%d.%d", prefix, strings.ReplaceAll(t.Name(), "/", "."), os.Getpid(), nameSeq.Add(1))
}

// Eventually polls cond every 10 ms until it holds, failing the test with what after d.
func Eventually(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Context returns a context that ends after d or with the test.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
