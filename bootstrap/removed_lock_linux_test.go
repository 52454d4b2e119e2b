//go:build linux

package bootstrap_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Something else removes a live serving process's agent lock, agents/<id>.lock (systemd-tmpfiles
// ages plain files in /tmp, the namespace's directory without XDG_RUNTIME_DIR; a user's rm -rf
// takes its socket too). The owner is alive all along, so another process that registers the
// name is refused with 1100, a look-up from another process leaves its entries alone, and the
// name answers look-ups again once the owner runs: whether the owner runs meanwhile (and may be
// making its lock again), or is stopped (so that the look-up and the claim come while the lock
// is missing). The owner makes its lock again at the same path, and holds it. Before the fix the
// claim took the name (the missing lock read as a dead owner) and the look-up removed it.
func TestRemovedAgentLockKeepsTheOwnersNames(t *testing.T) {
	for _, tc := range []struct {
		name       string
		role       string
		stop       bool // the owner is stopped while its files are missing
		removeSock bool // its socket's file goes too (rm -rf of agents/)
	}{
		{name: "running", role: "serve"},
		{name: "running-polled", role: "servepolled"},
		{name: "stopped", role: "serve", stop: true},
		{name: "stopped-socket-too", role: "serve", stop: true, removeSock: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxTimeout(t, 60*time.Second)
			name := uniqueName(t)
			c := startChild(t, tc.role, name)
			require.Equal(t, "ready", c.Line(t))
			pid := c.Cmd.Process.Pid
			link, record, err := bootstrap.NamePaths(name, 0)
			require.NoError(t, err)
			target, err := os.Readlink(link)
			require.NoError(t, err)
			agentSock := filepath.Join(filepath.Dir(link), target)
			agentLock := strings.TrimSuffix(agentSock, ".sock") + ".lock"
			require.FileExists(t, agentLock)

			stopped := false
			defer func() {
				if stopped {
					_ = c.Cmd.Process.Signal(syscall.SIGCONT)
				}
			}()
			if tc.stop {
				require.NoError(t, c.Cmd.Process.Signal(syscall.SIGSTOP))
				stopped = true
				waitStopped(t, pid)
			}
			require.NoError(t, os.Remove(agentLock))
			if tc.removeSock {
				require.NoError(t, os.Remove(agentSock))
				// The look-up cannot reach the owner, and leaves its entries alone.
				_, err := bootstrap.LookUp(ctx, name)
				require.ErrorIs(t, err, bootstrap.ErrUnknownService)
				require.FileExists(t, record, "a live owner's record stays")
				_, err = os.Lstat(link)
				require.NoError(t, err, "a live owner's link stays")
			}

			rival := startChild(t, "race", name)
			_, err = fmt.Fprintln(rival.Stdin, "go")
			require.NoError(t, err)
			require.Equal(t, "code 1100", rival.Line(t), "another process cannot take a live owner's name")
			require.NoError(t, rival.Stdin.Close())
			requireOwner(t, name, pid)

			if stopped {
				require.NoError(t, c.Cmd.Process.Signal(syscall.SIGCONT))
				stopped = false
			}
			eventuallyServed(t, ctx, name, "the lock was removed")
			requireOwner(t, name, pid)
			eventually(t, "the owner holds its lock again at the same path", func() bool {
				return lockHeld(t, agentLock)
			})
		})
	}
}

// lockHeld reports whether another open file holds a flock on path.
func lockHeld(t *testing.T, path string) bool {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB) == unix.EWOULDBLOCK
}

// A killed owner whose lock was removed before it died is still found dead, by its socket that
// refuses connections or, with its socket's file gone too (as the agent sweep leaves a dead
// agent whose names' records stay), by its process that is gone: another process registers the
// name, and a look-up says it is not served. A missing lock is no sign of life either.
func TestRemovedAgentLockOfAKilledOwnerFreesItsNames(t *testing.T) {
	for _, tc := range []struct {
		name       string
		removeSock bool
	}{
		{name: "socket-refuses"},
		{name: "socket-gone", removeSock: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxTimeout(t, 60*time.Second)
			name := uniqueName(t)
			c := startChild(t, "serve", name)
			require.Equal(t, "ready", c.Line(t))
			link, _, err := bootstrap.NamePaths(name, 0)
			require.NoError(t, err)
			target, err := os.Readlink(link)
			require.NoError(t, err)
			agentSock := filepath.Join(filepath.Dir(link), target)
			agentLock := strings.TrimSuffix(agentSock, ".sock") + ".lock"

			require.NoError(t, c.Cmd.Process.Signal(syscall.SIGSTOP))
			waitStopped(t, c.Cmd.Process.Pid)
			require.NoError(t, os.Remove(agentLock))
			if tc.removeSock {
				require.NoError(t, os.Remove(agentSock))
			}
			require.NoError(t, c.Cmd.Process.Kill())
			_ = c.Cmd.Wait()

			_, known := bootstrap.Owner(name, 0)
			require.False(t, known, "a killed owner owns nothing")
			_, err = bootstrap.LookUp(ctx, name)
			require.ErrorIs(t, err, bootstrap.ErrUnknownService)
			rival := startChild(t, "race", name)
			_, err = fmt.Fprintln(rival.Stdin, "go")
			require.NoError(t, err)
			require.Equal(t, "ok", rival.Line(t), "a killed owner's name is free")
		})
	}
}

// An agent keeps its files and its names' entries young, so that systemd-tmpfiles, which removes
// the entries of /tmp whose atime, mtime and ctime are all older than its age (10 days by
// default), does not remove them while the name is served: the record, the link and the guard of
// each name, the agent's socket and its lock. Their times, set 11 days back here, are now's again
// after the agent's touch (which it does every hour).
func TestAgentKeepsItsFilesYoung(t *testing.T) {
	name := uniqueName(t)
	register(t, name, nil)
	link, record, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	guard, err := bootstrap.LegacyLockPath(name, 0)
	require.NoError(t, err)
	target, err := os.Readlink(link)
	require.NoError(t, err)
	agentSock := filepath.Join(filepath.Dir(link), target)
	agentLock := strings.TrimSuffix(agentSock, ".sock") + ".lock"
	files := []string{record, link, guard, agentSock, agentLock}

	old := time.Now().Add(-11 * 24 * time.Hour)
	ts := unix.NsecToTimespec(old.UnixNano())
	for _, f := range files {
		require.NoError(t, unix.UtimesNanoAt(unix.AT_FDCWD, f, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW), f)
	}
	bootstrap.TouchAgents()
	for _, f := range files {
		var st unix.Stat_t
		require.NoError(t, unix.Lstat(f, &st), f)
		for what, at := range map[string]unix.Timespec{"atime": st.Atim, "mtime": st.Mtim} {
			require.True(t, time.Unix(at.Unix()).After(old.Add(24*time.Hour)), "%s of %s is still %v", what, f, time.Unix(at.Unix()))
		}
	}
}
