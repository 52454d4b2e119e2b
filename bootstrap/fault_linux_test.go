//go:build linux

package bootstrap_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/rerun"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

// inDouble reports whether this process runs the Darwin logic over the libSystem double. When it
// does not, it runs the calling test in a child that does, fails t if the child fails, and
// returns false: the caller then returns.
func inDouble(t *testing.T) bool {
	t.Helper()
	if throughDouble() {
		return true
	}
	rerun.Test(t, libsystemdouble.Env+"=1")
	return false
}

// launchd can answer with a code outside its bootstrap codes 1100–1106 (CoreFoundation's own
// logs show 141 from bootstrap_register2, in processes outside a GUI login session). Each call
// then fails with an error that names the code and what usually causes it, matches
// ErrUnexpectedCode, and is none of the bootstrap codes. RegisterUnique gives up at once: another
// suffix would meet the same refusal (one fault only, so a retry would have succeeded).
func TestLaunchdUnexpectedCode(t *testing.T) {
	if !inDouble(t) {
		return
	}
	for _, tc := range []struct {
		name, call string
		do         func(name string) error
	}{
		{name: "Register", call: "bootstrap_register2", do: func(name string) error {
			port := newPort(t)
			defer port.Close()
			_, err := bootstrap.Register(name, port, &bootstrap.Options{})
			return err
		}},
		{name: "RegisterUnique", call: "bootstrap_register2", do: func(name string) error {
			port := newPort(t)
			defer port.Close()
			_, err := bootstrap.RegisterUnique(name, port, &bootstrap.Options{})
			return err
		}},
		{name: "CheckIn", call: "bootstrap_check_in", do: func(name string) error { _, err := bootstrap.CheckIn(name); return err }},
		{name: "LookUp", call: "bootstrap_look_up", do: func(name string) error {
			_, err := bootstrap.LookUp(ctxTimeout(t, 10*time.Second), name)
			return err
		}},
		{name: "LookUpPID", call: "bootstrap_look_up2", do: func(name string) error {
			_, err := bootstrap.LookUpPID(ctxTimeout(t, 10*time.Second), name, 1)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			t.Cleanup(libsystemdouble.Reset)
			libsystemdouble.Inject(libsystemdouble.Fault{Call: tc.call, Code: 141})
			err := tc.do(uniqueName(t))
			require.ErrorIs(t, err, bootstrap.ErrUnexpectedCode)
			var be *bootstrap.Error
			require.ErrorAs(t, err, &be)
			require.Zero(t, be.Code, "not one of launchd's bootstrap codes")
			for _, c := range []bootstrap.Code{bootstrap.ErrNotPrivileged, bootstrap.ErrUnknownService, bootstrap.ErrServiceActive} {
				require.NotErrorIs(t, err, c)
			}
			require.ErrorContains(t, err, "141 (0x8d)")
			require.ErrorContains(t, err, "GUI login session")
		})
	}
}

// A failure of the message that carries the request stays a Mach error: with no bootstrap port
// the request cannot be sent (MACH_SEND_INVALID_DEST).
func TestLaunchdUnreachable(t *testing.T) {
	if !inDouble(t) {
		return
	}
	leakcheck.Check(t)
	restore := libsystemdouble.SetBootstrapPort(0)
	defer restore()
	port := newPort(t)
	defer port.Close()
	_, err := bootstrap.Register(uniqueName(t), port, &bootstrap.Options{})
	require.ErrorIs(t, err, mach.SendInvalidDest)
	require.NotErrorIs(t, err, bootstrap.ErrUnexpectedCode)
	_, err = bootstrap.CheckIn(uniqueName(t))
	require.ErrorIs(t, err, mach.SendInvalidDest)
	_, err = bootstrap.LookUp(ctxTimeout(t, 10*time.Second), uniqueName(t))
	require.ErrorIs(t, err, mach.SendInvalidDest)
}

// When this process's sandbox or application groups cannot be read (sandbox_check, csops or
// SecTask failing, a malformed entitlements blob), Register cannot say which rule a name breaks and lets launchd decide; so
// does RegisterUnique, which uses the prefix as given: both register a name inside the groups and
// both get launchd's 1100 outside them. A malformed group the signature does declare is a
// configuration error, which both report.
func TestRegisterUniqueIsAsStrictAsRegister(t *testing.T) {
	if !inDouble(t) {
		return
	}
	badBlob := []byte{0xfa, 0xde, 0x71, 0x71, 0, 0, 0, 8 + 7, '<', 'p', 'l', 'i', 's', 't', '>'}
	for _, tc := range []struct {
		name    string
		ent     libsystemdouble.Entitlements
		faults  []libsystemdouble.Fault
		badRule error // both refuse with this rule; nil: launchd decides
	}{
		{name: "sandbox_check fails", ent: libsystemdouble.Entitlements{Groups: []string{testGroup}},
			faults: []libsystemdouble.Fault{{Call: "sandbox_check", Code: -1, Count: 1000}}},
		{name: "csops fails", ent: libsystemdouble.Entitlements{Groups: []string{testGroup}},
			faults: []libsystemdouble.Fault{{Call: "csops", Code: -1, Count: 1000}}},
		{name: "SecTask fails", ent: libsystemdouble.Entitlements{Groups: []string{testGroup}},
			faults: []libsystemdouble.Fault{{Call: "SecTaskCopyValueForEntitlement", Code: 1, Count: 1000}}},
		{name: "malformed blob", ent: libsystemdouble.Entitlements{Groups: []string{testGroup}, Blob: badBlob}},
		{name: "malformed group", ent: libsystemdouble.Entitlements{Groups: []string{testGroup, "not-a-group"}},
			badRule: sandboxcheck.ErrBadGroup},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			t.Cleanup(libsystemdouble.SetEntitlements(&tc.ent))
			t.Cleanup(libsystemdouble.Reset)
			for _, f := range tc.faults {
				libsystemdouble.Inject(f)
			}
			register := func(name string) error {
				port := newPort(t)
				reg, err := bootstrap.Register(name, port, &bootstrap.Options{})
				if err != nil {
					port.Close()
					return err
				}
				return reg.Close()
			}
			registerUnique := func(prefix string) error {
				port := newPort(t)
				reg, err := bootstrap.RegisterUnique(prefix, port, &bootstrap.Options{})
				if err != nil {
					port.Close()
					return err
				}
				require.True(t, strings.HasPrefix(reg.Name(), prefix+"."), reg.Name())
				return reg.Close()
			}
			inside, outside := testGroup+"."+uniqueName(t), uniqueName(t)
			for _, err := range []error{register(inside + ".x"), registerUnique(inside)} {
				if tc.badRule != nil {
					require.ErrorIs(t, err, tc.badRule)
				} else {
					require.NoError(t, err, "inside the groups")
				}
			}
			for _, err := range []error{register(outside + ".x"), registerUnique(outside)} {
				if tc.badRule != nil {
					require.ErrorIs(t, err, tc.badRule)
					continue
				}
				require.ErrorIs(t, err, bootstrap.ErrNotPrivileged, "launchd's answer")
				var rule *sandboxcheck.NameError
				require.False(t, errors.As(err, &rule), "no rule can be named: %v", err)
			}
		})
	}
}

// Where libSystem cannot be bound, or a symbol the call needs is missing, each call fails with
// that cause and leaves nothing behind; a look-up whose context ends first returns at once, and
// the right that launchd gives it later is released.
func TestLaunchdMissingPieces(t *testing.T) {
	if !inDouble(t) {
		return
	}
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	port := newPort(t)
	defer port.Close()

	errLoad := errors.New("dlopen failed")
	restore, ok := bootstrap.FailLoad(errLoad)
	require.True(t, ok)
	_, err := bootstrap.Register(uniqueName(t), port, &bootstrap.Options{})
	require.ErrorIs(t, err, errLoad)
	_, err = bootstrap.CheckIn(uniqueName(t))
	require.ErrorIs(t, err, errLoad)
	_, err = bootstrap.LookUp(ctx, uniqueName(t))
	require.ErrorIs(t, err, errLoad)
	restore()

	register2, lookUp2 := darwin.BootstrapRegister2, darwin.BootstrapLookUp2
	darwin.BootstrapRegister2, darwin.BootstrapLookUp2 = nil, nil
	_, err = bootstrap.Register(uniqueName(t), port, &bootstrap.Options{})
	require.ErrorIs(t, err, mach.KernNotSupported)
	_, err = bootstrap.LookUpPID(ctx, uniqueName(t), 1)
	require.ErrorIs(t, err, mach.KernNotSupported)
	darwin.BootstrapRegister2, darwin.BootstrapLookUp2 = register2, lookUp2

	// A look-up that launchd answers only after its context has ended.
	name := uniqueName(t)
	reg := register(t, name, &bootstrap.Options{})
	lookUp := darwin.BootstrapLookUp
	entered, release, answered := make(chan struct{}), make(chan struct{}), make(chan struct{})
	darwin.BootstrapLookUp = func(bp uint32, name string, port *uint32) int32 {
		close(entered)
		<-release
		defer close(answered)
		return lookUp(bp, name, port)
	}
	defer func() { darwin.BootstrapLookUp = lookUp }()
	cancelled, cancel := context.WithCancel(ctx)
	go func() { <-entered; cancel() }()
	_, err = bootstrap.LookUp(cancelled, name)
	require.ErrorIs(t, err, context.Canceled)
	close(release)
	<-answered
	require.NoError(t, reg.Close())
}
