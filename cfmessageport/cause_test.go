package cfmessageport_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

// sentinels are every sentinel a Dial or look-up error could match: CF's statuses, launchd's
// codes and sandboxcheck's rules. A failure must match the ones of its cause and no other.
var sentinels = []error{
	cfmessageport.ErrSendTimeout, cfmessageport.ErrReceiveTimeout, cfmessageport.ErrInvalid,
	cfmessageport.ErrTransport, cfmessageport.ErrBecameInvalid,
	bootstrap.ErrNotPrivileged, bootstrap.ErrNameInUse, bootstrap.ErrUnknownService, bootstrap.ErrServiceActive,
	bootstrap.ErrBadCount, bootstrap.ErrNoMemory, bootstrap.ErrNoChildren,
	sandboxcheck.ErrEmptyName, sandboxcheck.ErrNameTooLong, sandboxcheck.ErrInvalidUTF8, sandboxcheck.ErrNameHasNUL,
	sandboxcheck.ErrOutsideGroups, sandboxcheck.ErrEmptyRest, sandboxcheck.ErrBadGroup,
}

// requireCause requires that err match exactly the sentinels in want, and that its text quote
// the service name exactly once.
func requireCause(t *testing.T, err error, name string, want ...error) {
	t.Helper()
	require.Error(t, err)
	for _, s := range sentinels {
		require.Equal(t, slices.Contains(want, s), errors.Is(err, s), "errors.Is(err, %v) for %q", s, err)
	}
	require.Equal(t, 1, strings.Count(err.Error(), strconv.Quote(name)), "the name quoted once: %q", err)
	if name != "" && utf8.ValidString(name) && !strings.Contains(name, "\x00") {
		// Unquoted too, leaving out the example name a rule suggests, which may extend it.
		text, _, _ := strings.Cut(err.Error(), "; use e.g. ")
		require.Equal(t, 1, strings.Count(text, name), "the name once: %q", err)
	}
}

// A look-up that finds no live server, a name the sandbox refuses and an invalid name each fail
// with their own cause, the same through Dial and LookUp (and their per-PID forms): no CF status
// (CFMessagePortCreateRemote gives none), and the name once in the text.
func TestDialAndLookUpNameTheCause(t *testing.T) {
	const group = "group.com.machport.cfmp"
	type target struct {
		name string
		pid  int // for a per-PID service
	}
	cases := []struct {
		name   string
		perPID bool
		// setup returns the name (and pid) to dial; it runs once for each operation.
		setup func(t *testing.T) target
		want  []error
	}{
		{name: "never registered", want: []error{bootstrap.ErrUnknownService},
			setup: func(t *testing.T) target { return target{name: uniqueName(t)} }},
		{name: "registered then killed", want: []error{bootstrap.ErrUnknownService},
			setup: func(t *testing.T) target {
				name := uniqueName(t)
				killChild(t, startChild(t, "serve", name))
				return target{name: name}
			}},
		{name: "registered then closed", want: []error{bootstrap.ErrUnknownService},
			setup: func(t *testing.T) target {
				srv, err := cfmessageport.Listen(uniqueName(t), echo, nil)
				require.NoError(t, err)
				require.NoError(t, srv.Close())
				return target{name: srv.Name()}
			}},
		{name: "per-PID, never registered", perPID: true, want: []error{bootstrap.ErrUnknownService},
			setup: func(t *testing.T) target { return target{name: uniqueName(t), pid: os.Getpid()} }},
		{name: "per-PID, registered then killed", perPID: true, want: []error{bootstrap.ErrUnknownService},
			setup: func(t *testing.T) target {
				name := uniqueName(t)
				c := startChild(t, "servepid", name)
				killChild(t, c)
				return target{name: name, pid: c.Cmd.Process.Pid}
			}},
		{name: "empty", want: []error{sandboxcheck.ErrEmptyName},
			setup: func(t *testing.T) target { return target{} }},
		{name: "NUL", want: []error{sandboxcheck.ErrNameHasNUL},
			setup: func(t *testing.T) target { return target{name: uniqueName(t) + "\x00x"} }},
		{name: "too long", want: []error{sandboxcheck.ErrNameTooLong},
			setup: func(t *testing.T) target { return target{name: uniqueName(t) + "." + strings.Repeat("x", 200)} }},
		{name: "bad UTF-8", want: []error{sandboxcheck.ErrInvalidUTF8},
			setup: func(t *testing.T) target { return target{name: uniqueName(t) + ".\xff\xfe"} }},
		// 1100, with the rule that predicted it: one cause, launchd's code and its reason.
		{name: "outside the app groups, served", want: []error{bootstrap.ErrNotPrivileged, sandboxcheck.ErrOutsideGroups},
			setup: func(t *testing.T) target {
				name := uniqueName(t)
				startChild(t, "serve", name) // unsandboxed, so the refusal is the sandbox's alone
				sandbox(t, group)
				return target{name: name}
			}},
		{name: "the app group itself", want: []error{bootstrap.ErrNotPrivileged, sandboxcheck.ErrEmptyRest},
			setup: func(t *testing.T) target { sandbox(t, group); return target{name: group} }},
	}
	ops := []struct {
		name   string
		perPID bool
		call   func(ctx context.Context, tg target) error
	}{
		{name: "Dial", call: func(ctx context.Context, tg target) error {
			r, err := cfmessageport.Dial(ctx, tg.name)
			if err == nil {
				r.Close()
			}
			return err
		}},
		{name: "DialPair", call: func(ctx context.Context, tg target) error {
			c, err := cfmessageport.DialPair(ctx, tg.name, echo, nil)
			if err == nil {
				c.Close()
			}
			return err
		}},
		{name: "LookUp", call: func(ctx context.Context, tg target) error {
			s, err := bootstrap.LookUp(ctx, tg.name)
			if err == nil {
				s.Close()
			}
			return err
		}},
		{name: "DialPID", perPID: true, call: func(ctx context.Context, tg target) error {
			r, err := cfmessageport.DialPID(ctx, tg.name, tg.pid)
			if err == nil {
				r.Close()
			}
			return err
		}},
		{name: "LookUpPID", perPID: true, call: func(ctx context.Context, tg target) error {
			s, err := bootstrap.LookUpPID(ctx, tg.name, tg.pid)
			if err == nil {
				s.Close()
			}
			return err
		}},
	}
	for _, tc := range cases {
		for _, op := range ops {
			if op.perPID != tc.perPID {
				continue
			}
			t.Run(tc.name+"/"+op.name, func(t *testing.T) {
				leakcheck.Check(t)
				tg := tc.setup(t)
				err := op.call(ctxTimeout(t, 10*time.Second), tg)
				requireCause(t, err, tg.name, tc.want...)
				if strings.HasPrefix(op.name, "Dial") {
					var ce *cfmessageport.Error
					require.ErrorAs(t, err, &ce)
					require.Contains(t, []string{"dial", "pair"}, ce.Op)
					require.Zero(t, ce.Status, "a failed Dial has no CF status")
				}
			})
		}
	}
}

// A right that is already dead when a Remote is made for it: no live server has the name, as
// CF's CFMessagePortCreateRemote finds (it returns NULL for a dead name).
func TestNewRemoteOfADeadRight(t *testing.T) {
	leakcheck.Check(t)
	port, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	send, err := port.MakeSend()
	require.NoError(t, err)
	require.NoError(t, port.Close()) // send is now a dead name
	name := uniqueName(t)
	r, err := cfmessageport.NewRemote(name, send)
	require.Nil(t, r)
	requireCause(t, err, name, bootstrap.ErrUnknownService)
	require.ErrorContains(t, err, "dead name")
}

// killChild SIGKILLs a serving child and waits until it is gone.
func killChild(t *testing.T, c *child) {
	t.Helper()
	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
	_ = c.Cmd.Wait()
}

// sandbox puts this process in the emulated sandbox with groups until the test ends; where the
// sandbox is the real one (macOS), the test is skipped: sandbox-exec tests cover it there.
func sandbox(t *testing.T, groups ...string) {
	t.Helper()
	if err := sandboxcheck.SetApplicationGroups(groups...); errors.Is(err, errors.ErrUnsupported) {
		t.Skip("the emulated sandbox is Linux's; on macOS the entitlements decide")
	} else {
		require.NoError(t, err)
	}
	t.Cleanup(sandboxcheck.ResetApplicationGroups)
}
