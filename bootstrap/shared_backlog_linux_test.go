//go:build linux

package bootstrap_test

import (
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// All of a process's names share its agent's listen queue. A flood of silent connections to one
// name that fills it (here while the owner is stopped, so that the agent accepts none of them)
// does not turn away a look-up of another name of the same process: the look-up waits for room,
// and is answered once the owner runs and its agent has accepted the flood (giving up the
// oldest silent connections past 64). Before the fix the look-up failed at once with EAGAIN,
// the error of a connect to a full queue on a non-blocking socket.
func TestFullListenQueueDelaysOtherNamesLookUps(t *testing.T) {
	ctx := ctxTimeout(t, 60*time.Second)
	base := uniqueName(t)
	c := startChild(t, "servemany", base)
	require.Equal(t, "ready", c.Line(t))
	flooded, other := base+".0", base+".1"
	sock, _, err := bootstrap.NamePaths(flooded, 0)
	require.NoError(t, err)

	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGSTOP))
	stopped := true
	defer func() {
		if stopped {
			_ = c.Cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	waitStopped(t, c.Cmd.Process.Pid)
	var silent []int
	defer func() {
		for _, fd := range silent {
			unix.Close(fd)
		}
	}()
	for {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		require.NoError(t, err)
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: sock})
		if errors.Is(err, unix.EAGAIN) {
			unix.Close(fd)
			break
		}
		require.NoError(t, err)
		silent = append(silent, fd)
	}
	t.Logf("the listen queue is full after %d silent connections", len(silent))

	var waited atomic.Bool
	restore := bootstrap.OnListenQueueFull(func() { waited.Store(true) })
	defer restore()
	type result struct {
		s   *mach.SendRight
		err error
	}
	got := make(chan result, 1)
	go func() {
		s, err := bootstrap.LookUp(ctx, other)
		got <- result{s, err}
	}()
	// Until the look-up waits for room, or gave up without waiting (the failure below).
	var r result
	for done := false; !done && !waited.Load(); {
		select {
		case r = <-got:
			done = true
		case <-time.After(time.Millisecond):
		}
	}
	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGCONT))
	stopped = false
	if r.s == nil && r.err == nil {
		r = <-got
	}
	require.NoError(t, r.err, "the look-up of another name of the flooded process")
	defer r.s.Close()
	ty, err := mach.TypeOf(r.s.Name())
	require.NoError(t, err)
	require.True(t, ty.Has(mach.TypeSend), "a live send right")
}
