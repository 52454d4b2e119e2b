package bootstrap_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

func newPort(t testing.TB) *mach.ReceiveRight {
	t.Helper()
	p, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	return p
}

func register(t testing.TB, name string, opts *bootstrap.Options) *bootstrap.Registration {
	t.Helper()
	port := newPort(t)
	reg, err := bootstrap.Register(name, port, opts)
	if err != nil {
		port.Close()
		require.NoError(t, err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

// requireRefusal checks launchd's refusal of a registration. Open-source launchd answered
// ErrServiceActive (1103) to the registrant itself and ErrNotPrivileged (1100) to anyone else,
// and so does the emulation; today's launchd is closed and not yet seen by this project, so on
// macOS any of its three refusals passes.
func requireRefusal(t *testing.T, want, got bootstrap.Code) {
	t.Helper()
	if runtime.GOOS == "darwin" {
		require.Contains(t, []bootstrap.Code{bootstrap.ErrNotPrivileged, bootstrap.ErrNameInUse, bootstrap.ErrServiceActive}, got)
		return
	}
	require.Equal(t, want, got)
}

// eventuallyUnknown waits until looking name up gives ErrUnknownService.
func eventuallyUnknown(t *testing.T, ctx context.Context, name, what string) {
	t.Helper()
	eventually(t, what, func() bool {
		s, err := bootstrap.LookUp(ctx, name)
		if err == nil {
			s.Close()
		}
		return errors.Is(err, bootstrap.ErrUnknownService)
	})
}

// roundTrip sends a request with a reply right through dest and checks the echo (bodies are
// 4-byte multiples, as Mach pads them).
func roundTrip(t *testing.T, ctx context.Context, dest *mach.SendRight, body string) {
	t.Helper()
	reply := newPort(t)
	defer reply.Close()
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(dest), Local: mach.MakeSendOnceOf(reply), ID: idEcho, Body: []byte(body)}))
	var m mach.Message
	require.NoError(t, mach.Receive(ctx, reply, &m))
	require.Equal(t, body, string(m.Body))
	require.NoError(t, m.Destroy())
}

func TestRegisterLookUpSendWithdraw(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	name := uniqueName(t)
	reg := register(t, name, &bootstrap.Options{})
	require.Equal(t, name, reg.Name())
	require.Zero(t, reg.PID())

	send, err := bootstrap.LookUp(ctx, name)
	require.NoError(t, err)
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOf(send), ID: 42, Body: []byte("hello!!!")}))
	var m mach.Message
	require.NoError(t, mach.Receive(ctx, reg.Port(), &m))
	require.Equal(t, int32(42), m.ID)
	require.Equal(t, "hello!!!", string(m.Body))
	require.NoError(t, m.Destroy())

	require.NoError(t, reg.Close())
	require.NoError(t, reg.Close(), "Close twice")
	eventuallyUnknown(t, ctx, name, "the name is withdrawn")
	// Withdrawn names can be registered again.
	eventually(t, "the name can be registered again", func() bool {
		port := newPort(t)
		again, err := bootstrap.Register(name, port, &bootstrap.Options{})
		if err != nil {
			port.Close()
			return false
		}
		return again.Close() == nil
	})
}

func TestRegisterRefusals(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	served := uniqueName(t)
	register(t, served, &bootstrap.Options{})

	cases := []struct {
		name     string
		service  string
		wantCode bootstrap.Code
		wantRule error
	}{
		{name: "same process, same name", service: served, wantCode: bootstrap.ErrServiceActive},
		{name: "empty", service: "", wantRule: sandboxcheck.ErrEmptyName},
		{name: "NUL", service: "com.machport.a\x00b", wantRule: sandboxcheck.ErrNameHasNUL},
		{name: "128 bytes", service: strings.Repeat("n", 128), wantRule: sandboxcheck.ErrNameTooLong},
		{name: "invalid UTF-8", service: "com.machport.\xff", wantRule: sandboxcheck.ErrInvalidUTF8},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			port := newPort(t)
			defer port.Close()
			reg, err := bootstrap.Register(tc.service, port, &bootstrap.Options{})
			require.Nil(t, reg)
			var be *bootstrap.Error
			require.ErrorAs(t, err, &be)
			require.Equal(t, "bootstrap_register2", be.Op)
			require.Equal(t, tc.service, be.Name, "never truncated")
			if tc.wantCode != 0 {
				requireRefusal(t, tc.wantCode, be.Code)
			}
			if tc.wantRule != nil {
				require.ErrorIs(t, err, tc.wantRule)
			}
			// The port is still the caller's and works.
			_, err = port.MakeSend()
			require.NoError(t, err)
			require.NoError(t, mach.Deallocate(port.Name()))
		})
	}

	_, err := bootstrap.Register(uniqueName(t), nil, &bootstrap.Options{})
	require.Error(t, err)

	_, err = bootstrap.LookUp(ctx, uniqueName(t))
	require.ErrorIs(t, err, bootstrap.ErrUnknownService)
	_, err = bootstrap.LookUpPID(ctx, served, 0)
	require.Error(t, err)
	_, err = bootstrap.CheckIn(served)
	requireCode(t, bootstrap.ErrServiceActive, err, "checking in a name this process registered")

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = bootstrap.LookUp(cancelled, served)
	require.ErrorIs(t, err, context.Canceled)
}

func TestPerPIDNamesAreScopedToTheirProcess(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	name := uniqueName(t)
	perPID := register(t, name, &bootstrap.Options{PerPID: true})
	require.Equal(t, os.Getpid(), perPID.PID())

	s, err := bootstrap.LookUpPID(ctx, name, os.Getpid())
	require.NoError(t, err)
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOf(s), ID: 1}))
	var m mach.Message
	require.NoError(t, mach.Receive(ctx, perPID.Port(), &m))
	require.NoError(t, m.Destroy())

	_, err = bootstrap.LookUp(ctx, name)
	require.ErrorIs(t, err, bootstrap.ErrUnknownService, "a per-PID name is not global")
	_, err = bootstrap.LookUpPID(ctx, name, os.Getppid())
	require.ErrorIs(t, err, bootstrap.ErrUnknownService, "nor another process's")

	// The same name can be global as well, and the two do not meet.
	global := register(t, name, &bootstrap.Options{})
	g, err := bootstrap.LookUp(ctx, name)
	require.NoError(t, err)
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOf(g), ID: 2}))
	require.NoError(t, mach.Receive(ctx, global.Port(), &m))
	require.Equal(t, int32(2), m.ID)
	require.NoError(t, m.Destroy())
}

// launchd drops a name when its receive right dies, however it dies.
func TestNameGoesWithItsPort(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	name := uniqueName(t)
	reg := register(t, name, &bootstrap.Options{})
	old, err := bootstrap.LookUp(ctx, name)
	require.NoError(t, err)
	defer old.Close()

	require.NoError(t, reg.Port().Close())
	eventuallyUnknown(t, ctx, name, "the name is gone")
	err = mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(old), ID: 1})
	require.ErrorIs(t, err, mach.SendInvalidDest)
	require.NoError(t, reg.Close())
}

func TestRegisterUnique(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	const prefix = "com.machport.test.unique"
	seen := map[string]bool{}
	for range 3 {
		port := newPort(t)
		reg, err := bootstrap.RegisterUnique(prefix, port, &bootstrap.Options{})
		require.NoError(t, err)
		t.Cleanup(func() { reg.Close() })
		require.True(t, strings.HasPrefix(reg.Name(), prefix+"."), reg.Name())
		require.Len(t, reg.Name(), len(prefix)+1+16)
		require.False(t, seen[reg.Name()])
		seen[reg.Name()] = true
		s, err := bootstrap.LookUp(ctx, reg.Name())
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
	// A prefix that leaves no room for the suffix is refused, not truncated.
	port := newPort(t)
	defer port.Close()
	_, err := bootstrap.RegisterUnique(strings.Repeat("p", 120), port, &bootstrap.Options{})
	require.ErrorIs(t, err, sandboxcheck.ErrNameTooLong)
}

func TestErrorText(t *testing.T) {
	err := error(&bootstrap.Error{Op: "bootstrap_look_up", Name: "com.example.x", Code: bootstrap.ErrUnknownService})
	require.Equal(t, `bootstrap: bootstrap_look_up "com.example.x": 1102 (0x44e) BOOTSTRAP_UNKNOWN_SERVICE: Unknown service name`, err.Error())
	require.ErrorIs(t, fmt.Errorf("wrapped: %w", err), bootstrap.ErrUnknownService)
	require.NotErrorIs(t, err, bootstrap.ErrNotPrivileged)
	texts := map[bootstrap.Code]string{
		bootstrap.ErrNotPrivileged: "Permission denied", bootstrap.ErrNameInUse: "Service name already exists",
		bootstrap.ErrUnknownService: "Unknown service name", bootstrap.ErrServiceActive: "Service name already exists",
		bootstrap.ErrBadCount: "Too many lookups were requested in one request", bootstrap.ErrNoMemory: "Out of memory",
	}
	for code, text := range texts {
		require.Equal(t, text, code.Text())
		require.True(t, bootstrap.IsCode(int32(code)))
		require.Contains(t, code.Error(), text)
	}
	require.NotEmpty(t, bootstrap.ErrNoChildren.Text())
	require.False(t, bootstrap.IsCode(1099))
	perPID := &bootstrap.Error{Op: "bootstrap_look_up2", Name: "n", PID: 12, Code: bootstrap.ErrUnknownService}
	require.Contains(t, perPID.Error(), "pid 12")
}

// A child registers a name; the parent looks it up and talks to it; the child is killed, which
// frees the name and kills the right the parent holds.
func TestCrossProcessRegisterLookUpAndKill(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	name := uniqueName(t)
	c := startChild(t, "serve", name)
	require.Equal(t, "ready", c.Line(t))

	s, err := bootstrap.LookUp(ctx, name)
	require.NoError(t, err)
	defer s.Close()
	roundTrip(t, ctx, s, "across processes")

	// While the child lives, the name is its own: registering it here is refused.
	port := newPort(t)
	_, err = bootstrap.Register(name, port, &bootstrap.Options{})
	var be *bootstrap.Error
	require.ErrorAs(t, err, &be)
	requireRefusal(t, bootstrap.ErrNotPrivileged, be.Code)
	port.Close()

	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
	_, _ = c.Cmd.Process.Wait()
	eventually(t, "the dead child's right is dead", func() bool {
		err := mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(s), ID: 1})
		return errors.Is(err, mach.SendInvalidDest)
	})
	eventuallyUnknown(t, ctx, name, "the name is free again")
	reg := register(t, name, &bootstrap.Options{})
	s3, err := bootstrap.LookUp(ctx, name)
	require.NoError(t, err)
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOf(s3), ID: 3}))
	var m mach.Message
	require.NoError(t, mach.Receive(ctx, reg.Port(), &m))
	require.NoError(t, m.Destroy())
}

func TestCrossProcessPerPIDLookUp(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	name := uniqueName(t)
	c := startChild(t, "serve", name, "PER_PID=1")
	require.Equal(t, "ready", c.Line(t))
	s, err := bootstrap.LookUpPID(ctx, name, c.Cmd.Process.Pid)
	require.NoError(t, err)
	defer s.Close()
	roundTrip(t, ctx, s, "per-PID!")
	_, err = bootstrap.LookUp(ctx, name)
	require.ErrorIs(t, err, bootstrap.ErrUnknownService)
}

// Sixteen processes race to register one name, free or left by a killed owner: exactly one
// wins, the others get 1100, and (in the emulation) the name's record names the winner.
func TestRegisterRace(t *testing.T) {
	for _, tc := range []struct {
		name   string
		killed bool // a killed process served the name before
	}{{name: "free"}, {name: "after a killed owner", killed: true}} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 16
			name := uniqueName(t)
			if tc.killed {
				c := startChild(t, "serve", name)
				require.Equal(t, "ready", c.Line(t))
				require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
				_, _ = c.Cmd.Process.Wait()
			}
			children := make([]*child, n)
			for i := range children {
				children[i] = startChild(t, "race", name)
			}
			for _, c := range children {
				_, err := c.Stdin.Write([]byte("go\n"))
				require.NoError(t, err)
			}
			results := make([]string, n)
			var wg sync.WaitGroup
			for i, c := range children {
				wg.Add(1)
				go func() { defer wg.Done(); results[i] = c.Line(t) }()
			}
			wg.Wait()
			won, winner := 0, 0
			for i, r := range results {
				switch r {
				case "ok":
					won++
					winner = children[i].Cmd.Process.Pid
				case fmt.Sprint("code ", int32(bootstrap.ErrNotPrivileged)):
				case fmt.Sprint("code ", int32(bootstrap.ErrNameInUse)), fmt.Sprint("code ", int32(bootstrap.ErrServiceActive)):
					if runtime.GOOS != "darwin" {
						t.Errorf("unexpected outcome %q", r)
					}
				default:
					t.Errorf("unexpected outcome %q", r)
				}
			}
			require.Equal(t, 1, won, "outcomes: %v", results)
			requireOwner(t, name, winner)
		})
	}
}
