package bootstrap_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

func init() {
	// Check name in, report the outcome, try to register it too, and hold what it got until
	// stdin closes.
	extraRoles["checkin"] = func(name string) error {
		port, err := bootstrap.CheckIn(name)
		checkIn := "ok"
		if err != nil {
			if checkIn, err = outcome(err); err != nil {
				return err
			}
		} else {
			defer port.Close()
		}
		reg, register, err := tryRegister(name)
		if err != nil {
			return err
		}
		if reg != nil {
			defer reg.Close()
		}
		fmt.Printf("check-in: %s, register: %s\n", checkIn, register)
		_, _ = os.Stdin.Read(make([]byte, 1))
		return nil
	}
}

// outcome says which of launchd's codes err carries, as tryRegister does.
func outcome(err error) (string, error) {
	var be *bootstrap.Error
	if !errors.As(err, &be) || be.Code == 0 {
		return "", err
	}
	return fmt.Sprint("code ", int32(be.Code)), nil
}

// CheckIn of a name that no launchd job declares makes it a service of this process, as
// launchd's job_mig_check_in2 does with flags 0 (launchd-842 src/core.c, after a mach-register
// sandbox check) and as crashpad's util/mach/bootstrap_test.cc sees on real launchd: the name can
// then be looked up, a second check-in gives 1103, and the name goes with its port, after which
// it can be checked in again. This process serves it: another process can neither check it in
// nor register it (1100), and this one cannot register it (1103).
func TestCheckInMakesAnUndeclaredName(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	name := uniqueName(t)
	_, err := bootstrap.LookUp(ctx, name)
	require.ErrorIs(t, err, bootstrap.ErrUnknownService, "nobody serves it yet")

	port, err := bootstrap.CheckIn(name)
	require.NoError(t, err, "an undeclared name is made")
	s, err := bootstrap.LookUp(ctx, name)
	require.NoError(t, err)
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOf(s), ID: 11, Body: []byte("checked!")}))
	var m mach.Message
	require.NoError(t, mach.Receive(ctx, port, &m))
	require.Equal(t, "checked!", string(m.Body))
	require.NoError(t, m.Destroy())

	_, err = bootstrap.CheckIn(name)
	requireCode(t, bootstrap.ErrServiceActive, err, "a second check-in of the active service")
	other := newPort(t)
	_, err = bootstrap.Register(name, other, &bootstrap.Options{})
	requireCode(t, bootstrap.ErrServiceActive, err, "registering the name this process checked in")
	require.NoError(t, other.Close())

	c := startChild(t, "checkin", name)
	requireOutcomes(t, c.Line(t), bootstrap.ErrNotPrivileged, bootstrap.ErrNotPrivileged) // another process's name
	require.NoError(t, c.Stdin.Close())
	_ = c.Cmd.Wait()

	require.NoError(t, port.Close())
	eventuallyUnknown(t, ctx, name, "the name goes with its port")
	eventually(t, "the name can be checked in again", func() bool {
		again, err := bootstrap.CheckIn(name)
		return err == nil && again.Close() == nil
	})
}

// A sandboxed process checks in only names inside its application groups: outside them the
// refusal is 1100 with the rule that broke (launchd's check-in makes a name only after the
// sandbox's mach-register check).
func TestSandboxedChildChecksIn(t *testing.T) {
	for _, tc := range []struct {
		name, service     string
		checkIn, register bootstrap.Code // 0: ok
	}{
		{name: "outside the group", service: uniqueName(t), checkIn: bootstrap.ErrNotPrivileged, register: bootstrap.ErrNotPrivileged},
		{name: "inside the group", service: testGroup + "." + uniqueName(t), register: bootstrap.ErrServiceActive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := startSandboxedChild(t, "checkin", tc.service)
			requireOutcomes(t, c.Line(t), tc.checkIn, tc.register)
			ctx := ctxTimeout(t, 10*time.Second)
			s, err := bootstrap.LookUp(ctx, tc.service)
			if tc.checkIn == 0 {
				require.NoError(t, err, "the child serves it")
				require.NoError(t, s.Close())
			} else {
				require.ErrorIs(t, err, bootstrap.ErrUnknownService)
			}
		})
	}
}

// requireOutcomes requires that a "checkin" child's line report checkIn and register (0: ok),
// with requireRefusal's latitude for launchd's refusals on macOS.
func requireOutcomes(t *testing.T, line string, checkIn, register bootstrap.Code) {
	t.Helper()
	parts := strings.SplitN(strings.TrimPrefix(line, "check-in: "), ", register: ", 2)
	require.Len(t, parts, 2, line)
	for i, want := range []bootstrap.Code{checkIn, register} {
		if want == 0 {
			require.Equal(t, "ok", parts[i], line)
			continue
		}
		var code int32
		_, err := fmt.Sscanf(parts[i], "code %d", &code)
		require.NoError(t, err, line)
		requireRefusal(t, want, bootstrap.Code(code))
	}
}

// requireCode requires launchd's answer want in err; on macOS, whose launchd is closed, any of
// its refusals passes where the open-source one gives want (see requireRefusal).
func requireCode(t *testing.T, want bootstrap.Code, err error, what string) {
	t.Helper()
	var be *bootstrap.Error
	require.ErrorAs(t, err, &be, what)
	requireRefusal(t, want, be.Code)
}
