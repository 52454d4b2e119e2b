package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/threadnames"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/sandboxcheck"
)

// selftestPrefix starts the self-test's service name; the parent's pid follows, so that
// self-tests running at once do not collide.
const selftestPrefix = "com.machport.machping.selftest"

func init() {
	register(&command{
		name:    "selftest",
		args:    "",
		summary: "start an echo service in a child process and ping it (the default command)",
		detail: `Starts 'machping serve' in a child process under a name of its own, pings it across
processes with an inline and an out-of-line payload, stops the child with SIGINT, checks that
the name is gone (a look-up gives 1102) and that this process holds no more port names than it
started with. Exit status 0 when all of that worked, 1 otherwise.`,
		examples: []string{"machping", "machping selftest --json"},
		flags:    selftestFlags,
	})
}

// selftestDoc is the self-test's JSON document.
type selftestDoc struct {
	header
	Version         string     `json:"version"`
	OS              string     `json:"os"`
	Arch            string     `json:"arch"`
	IPC             string     `json:"ipc"`
	Service         string     `json:"service"`
	ChildPID        int        `json:"child_pid"`
	Pings           []pingDoc  `json:"pings"`
	Withdrawn       bool       `json:"withdrawn"` // the name was gone once the child stopped
	PortNamesBefore int        `json:"port_names_before"`
	PortNamesAfter  int        `json:"port_names_after"`
	Passed          bool       `json:"passed"`
	Failure         *diagnosis `json:"failure,omitempty"`
}

func selftestFlags(fs *flag.FlagSet, o *output) func(context.Context, []string) int {
	return func(ctx context.Context, args []string) int {
		if len(args) != 0 {
			return o.usageError("selftest takes no arguments")
		}
		doc := selftestDoc{header: newHeader("selftest"), Version: version, OS: runtime.GOOS, Arch: runtime.GOARCH,
			IPC: ipcBackend(), Pings: []pingDoc{}}
		err := selftest(ctx, o, &doc)
		if err != nil {
			var d diagnosis
			if !errors.As(err, &d) {
				d = diagnosis{Message: err.Error()}
			}
			doc.Failure = &d
		}
		doc.Passed = err == nil
		code := exitOK
		switch {
		case errors.Is(err, errInterrupted) || (err != nil && ctx.Err() != nil):
			code = exitError // no answer either way
		case !doc.Passed:
			code = exitNegative
		}
		if o.json {
			return o.emit(doc, code)
		}
		if doc.Failure != nil {
			o.mu.Lock()
			doc.Failure.write(o.stdout, "self-test FAILED: ")
			o.mu.Unlock()
			return code
		}
		o.printf("self-test passed\n")
		return code
	}
}

// Error makes a diagnosis usable as an error within the self-test.
func (d diagnosis) Error() string { return d.Message }

func selftest(ctx context.Context, o *output, doc *selftestDoc) error {
	o.printf("machping %s self-test on %s/%s (%s)\n", version, doc.OS, doc.Arch, doc.IPC)
	// Both listings of port names from one thread, whose own names are then the same in both
	// (see threadnames.PerThread).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := mach.Names()
	if err != nil {
		return fmt.Errorf("listing port names: %w", err)
	}
	doc.PortNamesBefore = len(before)
	threadsBefore := threadCount()
	doc.Service = selftestName()

	child, err := startEchoChild(ctx, doc.Service)
	if err != nil {
		return err
	}
	defer child.end()
	doc.ChildPID = child.pid
	o.printf("started an echo service %s in child pid %d\n", doc.Service, child.pid)

	pings := []pingParams{
		{name: doc.Service, count: 5, interval: 10 * time.Millisecond, size: 56, timeout: 5 * time.Second},
		{name: doc.Service, count: 3, interval: 10 * time.Millisecond, size: 64 << 10, timeout: 5 * time.Second},
	}
	transmitted := 0
	for i, p := range pings {
		if i > 0 {
			o.printf("\n")
		}
		r := runPing(ctx, o, p)
		doc.Pings = append(doc.Pings, r.doc)
		transmitted += r.doc.Transmitted
		switch {
		case ctx.Err() != nil:
			return errInterrupted
		case r.dialErr != nil:
			return *r.dialErr
		case r.doc.Failure != nil:
			return *r.doc.Failure
		case r.doc.Received != p.count:
			return fmt.Errorf("%d of %d replies came back", r.doc.Received, p.count)
		}
	}

	o.printf("\n")
	requests, err := child.stop(ctx)
	if err != nil {
		return err
	}
	if requests != transmitted {
		return fmt.Errorf("the child served %d requests, not the %d sent", requests, transmitted)
	}
	if err := awaitWithdrawn(ctx, doc.Service); err != nil {
		return err
	}
	doc.Withdrawn = true
	o.printf("stopped the child (SIGINT): it withdrew the name after %d requests; a look-up now gives 1102 (unknown service)\n", requests)

	after, err := mach.Names()
	if err != nil {
		return fmt.Errorf("listing port names: %w", err)
	}
	doc.PortNamesAfter = len(after)
	o.printf("port names held by this process: %d before, %d after\n", doc.PortNamesBefore, doc.PortNamesAfter)
	if leaked := doc.PortNamesAfter - doc.PortNamesBefore - threadnames.PerThread*(threadCount()-threadsBefore); leaked > 0 {
		return fmt.Errorf("%d port names leaked", leaked)
	}
	return nil
}

// awaitWithdrawn waits up to 5 s for name to stop resolving: launchd withdraws a name
// asynchronously once its receive right dies.
func awaitWithdrawn(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		right, err := bootstrap.LookUp(ctx, name)
		switch {
		case errors.Is(err, bootstrap.ErrUnknownService):
			return nil
		case err == nil:
			right.Close()
		case ctx.Err() == nil:
			return fmt.Errorf("looking up the withdrawn name: %w", err)
		}
		select {
		case <-ctx.Done():
			if err := context.Cause(ctx); errors.Is(err, context.Canceled) {
				return errInterrupted
			}
			return fmt.Errorf("%s still resolves 5 s after its server stopped", name)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// threadCount is how many OS threads the Go runtime has created.
func threadCount() int { return pprof.Lookup("threadcreate").Count() }

// selftestName is the self-test's service name; in a sandbox with application groups it goes
// inside the first group, where the sandbox allows it.
func selftestName() string {
	name := fmt.Sprintf("%s.%d", selftestPrefix, os.Getpid())
	if groups, err := sandboxcheck.ApplicationGroups(); err == nil && len(groups) > 0 {
		name = fmt.Sprintf("%s.machping.selftest.%d", groups[0], os.Getpid())
	}
	return name
}

// errInterrupted reports a run that Ctrl-C (or SIGTERM) ended.
var errInterrupted = errors.New("interrupted")

// childGrace is how long a child gets to withdraw its names and exit before it is killed.
const childGrace = 3 * time.Second

// echoChild is a machping child process serving something ('serve', 'bench-server').
type echoChild struct {
	cmd    *exec.Cmd
	pid    int
	stdin  io.WriteCloser
	events *bufio.Scanner
	stderr lockedBuilder

	endOnce sync.Once
	waitErr error // the child's exit, once ended
}

// lockedBuilder collects a child's stderr, which exec copies from its own goroutine.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startEchoChild starts 'machping --json serve -q NAME' and waits until it serves.
func startEchoChild(ctx context.Context, name string) (*echoChild, error) {
	var ev servingEvent
	c, err := startChild(ctx, []string{"--json", "serve", "-q", name}, "serving", &ev)
	if err != nil {
		return nil, err
	}
	c.pid = ev.PID
	return c, nil
}

// startChild starts machping with args and waits for its first JSON event, of kind event, which
// it decodes into ready.
func startChild(ctx context.Context, args []string, event string, ready any) (*echoChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding machping's executable: %w", err)
	}
	c := &echoChild{}
	c.cmd = exec.Command(self, args...)
	c.cmd.Env = append(os.Environ(), childEnv+"=1")
	c.cmd.Stderr = &c.stderr
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting a machping child: %w", err)
	}
	c.events = bufio.NewScanner(stdout)
	if err := c.await(ctx, ready, event, 10*time.Second); err != nil {
		c.end()
		return nil, c.explain(err)
	}
	return c, nil
}

// await reads the child's next event, giving up when ctx ends or after timeout.
func (c *echoChild) await(ctx context.Context, v any, event string, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- c.next(v, event) }()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return errInterrupted
	case <-t.C:
		return fmt.Errorf("no %q event from the machping child within %v", event, timeout)
	}
}

// next reads the child's next JSON event into v and checks its kind. A child that fails says
// why in an error document, whose diagnosis becomes the error.
func (c *echoChild) next(v any, event string) error {
	if !c.events.Scan() {
		return errors.New("the machping child exited")
	}
	line := c.events.Bytes()
	var kind struct {
		Event string
		Error *diagnosis
	}
	_ = json.Unmarshal(line, &kind)
	switch {
	case kind.Error != nil:
		return *kind.Error
	case kind.Event != event:
		return fmt.Errorf("the machping child said %q, expected a %q event", line, event)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("the machping child said %q: %w", line, err)
	}
	return nil
}

// stop interrupts the child as Ctrl-C would and returns how many requests it served.
func (c *echoChild) stop(ctx context.Context) (int, error) {
	if err := c.cmd.Process.Signal(os.Interrupt); err != nil {
		return 0, err
	}
	var ev withdrawnEvent
	err := c.await(ctx, &ev, "withdrawn", childGrace)
	c.end()
	if err == nil && c.waitErr != nil {
		err = fmt.Errorf("the machping child exited with %w", c.waitErr)
	}
	if err != nil {
		return 0, c.explain(err)
	}
	return int(ev.Requests), nil
}

// explain adds what the child wrote on stderr (its diagnosis) to err; an error document the
// child printed has already said it.
func (c *echoChild) explain(err error) error {
	if s := strings.TrimSpace(c.stderr.String()); s != "" {
		return fmt.Errorf("%w; the child said:\n%s", err, s)
	}
	return err
}

// end asks the child to exit by closing its stdin, so that it withdraws its names and removes
// its files, and kills it if it has not exited within childGrace (a stopped child cannot).
// It may be called more than once, from any goroutine.
func (c *echoChild) end() {
	c.endOnce.Do(func() {
		c.stdin.Close()
		done := make(chan struct{})
		go func() { c.waitErr = c.cmd.Wait(); close(done) }()
		t := time.NewTimer(childGrace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = c.cmd.Process.Kill()
			<-done
		}
	})
}
