//go:build linux

package bootstrap_test

import (
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
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
	testproc.RerunTest(t, libsystemdouble.Env+"=1")
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
			_, err := bootstrap.Register(name, port, bootstrap.Options{})
			return err
		}},
		{name: "RegisterUnique", call: "bootstrap_register2", do: func(name string) error {
			port := newPort(t)
			defer port.Close()
			_, err := bootstrap.RegisterUnique(name, port, bootstrap.Options{})
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
	_, err := bootstrap.Register(uniqueName(t), port, bootstrap.Options{})
	require.ErrorIs(t, err, mach.SendInvalidDest)
	require.NotErrorIs(t, err, bootstrap.ErrUnexpectedCode)
	_, err = bootstrap.CheckIn(uniqueName(t))
	require.ErrorIs(t, err, mach.SendInvalidDest)
	_, err = bootstrap.LookUp(ctxTimeout(t, 10*time.Second), uniqueName(t))
	require.ErrorIs(t, err, mach.SendInvalidDest)
}
