//go:build linux

package bootstrap_test

import (
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func init() { extraRoles["serveatlimit"] = serveAtFDLimit }

// serveAtFDLimit registers name on a new port (whose send right holds no channel until it
// leaves the process), then lowers the open-file limit so that one more descriptor fits: the
// agent can accept a look-up's connection, but not make the channel the right needs to leave.
// It says "ready" and holds the name until stdin closes.
func serveAtFDLimit(name string) error {
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return err
	}
	reg, err := bootstrap.Register(name, port, nil)
	if err != nil {
		return err
	}
	defer reg.Close()
	probe, err := os.Open(os.DevNull) // the lowest free descriptor number
	if err != nil {
		return err
	}
	free := probe.Fd()
	probe.Close()
	lim := unix.Rlimit{Cur: uint64(free) + 1, Max: uint64(free) + 1}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// When the serving process cannot carry the right to the look-up (it is at its open-file
// limit), the look-up is told so with MACH_SEND_NO_BUFFER, not 1102: the name is served.
// Before the fix every failed hand-over was answered 1102, "unknown service".
func TestHandOverShortOfDescriptorsIsNotUnknownService(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	name := uniqueName(t)
	c := startChild(t, "serveatlimit", name)
	require.Equal(t, "ready", c.Line(t))
	s, err := bootstrap.LookUp(ctx, name)
	if err == nil {
		s.Close()
		t.Fatal("the right was carried: the child was not at its limit")
	}
	require.NotErrorIs(t, err, bootstrap.ErrUnknownService)
	if !throughDouble() { // the double's look-up gives launchd's codes only
		require.ErrorIs(t, err, mach.SendNoBuffer, "the emulation's answer for a channel it could not make")
	}
}
