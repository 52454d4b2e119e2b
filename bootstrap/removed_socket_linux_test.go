//go:build linux

package bootstrap_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func init() {
	extraRoles["servepolled"] = func(name string) error {
		bootstrap.PollAgentSockets()
		return runChild("serve", name)
	}
}

// Something else removes a live serving process's agent socket (systemd-tmpfiles cleaning an
// old file, a user's rm): every link of its names then leads to nothing. While the owner cannot
// act (stopped), a look-up from another process fails with 1102 and says why, and leaves the
// owner's entries alone (its lock is held: the entry is not stale); once the owner runs, it binds
// its socket again at the same path, told by inotify or, without inotify, by polling the file,
// and the name answers look-ups again. Before the fix the name never answered again until the
// process withdrew its last name.
func TestRemovedAgentSocketIsBoundAgain(t *testing.T) {
	for _, tc := range []struct{ name, role string }{
		{name: "watched", role: "serve"},
		{name: "polled", role: "servepolled"},
	} {
		t.Run(tc.name, func(t *testing.T) { removedAgentSocket(t, tc.role) })
	}
}

func removedAgentSocket(t *testing.T, role string) {
	ctx := ctxTimeout(t, 30*time.Second)
	name := uniqueName(t)
	c := startChild(t, role, name)
	require.Equal(t, "ready", c.Line(t))
	pid := c.Cmd.Process.Pid
	link, record, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	target, err := os.Readlink(link)
	require.NoError(t, err)
	agentSock := filepath.Join(filepath.Dir(link), target)
	require.FileExists(t, agentSock)

	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGSTOP))
	stopped := true
	defer func() {
		if stopped {
			_ = c.Cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	waitStopped(t, pid)
	require.NoError(t, os.Remove(agentSock))
	_, err = bootstrap.LookUp(ctx, name)
	require.ErrorIs(t, err, bootstrap.ErrUnknownService)
	if !throughDouble() { // the double's look-up returns launchd's code only
		require.ErrorIs(t, err, bootstrap.ErrOwnerSocketGone)
	}
	require.FileExists(t, record, "a live owner's record stays")
	_, err = os.Lstat(link)
	require.NoError(t, err, "a live owner's link stays")
	requireOwner(t, name, pid)

	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGCONT))
	stopped = false
	eventuallyServed(t, ctx, name, "after the socket was bound again")
	require.FileExists(t, agentSock, "bound again at the same path")
}

// eventuallyServed waits until a look-up of name succeeds, and makes a round trip through it.
func eventuallyServed(t *testing.T, ctx context.Context, name, what string) {
	t.Helper()
	eventually(t, "the name answers look-ups ("+what+")", func() bool {
		s, err := bootstrap.LookUp(ctx, name)
		if err != nil {
			return false
		}
		defer s.Close()
		roundTrip(t, ctx, s, what)
		return true
	})
}

// waitStopped returns once every thread of process pid is stopped (SIGSTOP reaches a running
// thread a moment after kill(2) returns).
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	eventually(t, "the process is stopped", func() bool {
		stats, err := filepath.Glob(filepath.Join("/proc", strconv.Itoa(pid), "task", "*", "stat"))
		if err != nil || len(stats) == 0 {
			return false
		}
		for _, p := range stats {
			b, err := os.ReadFile(p)
			if err != nil {
				return false
			}
			// The state follows the command's closing parenthesis: "pid (comm) S ...".
			i := strings.LastIndexByte(string(b), ')')
			if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
				return false
			}
		}
		return true
	})
}

// A look-up whose connection reached the agent's socket just before its file was removed, and
// still waits in the old listener's queue, is answered: the agent accepts what the old listener
// holds before closing it (closing it would reset the connection: "the owner went away").
func TestLookUpQueuedOnARemovedSocketIsAnswered(t *testing.T) {
	name := uniqueName(t)
	// The agent's accepts fail (as at the open-file limit) until restored, so the connection
	// below stays queued on the listener whose file goes.
	_, restore := bootstrap.FailAccepts(1<<30, unix.EMFILE)
	defer restore()
	register(t, name, nil)
	link, _, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	target, err := os.Readlink(link)
	require.NoError(t, err)
	agentSock := filepath.Join(filepath.Dir(link), target)
	before, err := os.Stat(agentSock)
	require.NoError(t, err)
	early, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: link, Net: "unixpacket"})
	require.NoError(t, err)
	defer early.Close()
	req, err := bootstrap.LookUpRequest(name, 0)
	require.NoError(t, err)
	_, err = early.Write(req)
	require.NoError(t, err)

	require.NoError(t, os.Remove(agentSock))
	eventually(t, "the socket is bound again", func() bool {
		now, err := os.Stat(agentSock)
		return err == nil && !os.SameFile(before, now)
	})
	restore()
	requireAnswered(t, early, "the queued look-up is answered, not reset")
}
