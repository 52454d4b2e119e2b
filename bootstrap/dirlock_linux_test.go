//go:build linux

package bootstrap_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// holdNamesLock takes the namespace's directory lock (names.lock) as another process would
// (a flock on another open file), and returns the lock file's inode and how to release it.
func holdNamesLock(t *testing.T) (ino uint64, release func()) {
	t.Helper()
	dir, err := bootstrap.Dir()
	require.NoError(t, err)
	fd, err := unix.Open(filepath.Join(dir, "names.lock"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	require.NoError(t, err)
	require.NoError(t, unix.Flock(fd, unix.LOCK_EX))
	var st unix.Stat_t
	require.NoError(t, unix.Fstat(fd, &st))
	var once bool
	release = func() {
		if !once {
			once = true
			unix.Close(fd)
		}
	}
	t.Cleanup(release)
	return st.Ino, release
}

// waitForLockWaiter returns once /proc/locks shows a process blocked on the flock of inode ino.
func waitForLockWaiter(t *testing.T, ino uint64) {
	t.Helper()
	suffix := ":" + strconv.FormatUint(ino, 10) + " "
	for {
		b, err := os.ReadFile("/proc/locks")
		require.NoError(t, err)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "-> FLOCK") && strings.Contains(l, suffix) {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// A registration waiting for names.lock (another process holds it: stopped by SIGSTOP or a
// debugger in its claim, or slow) does not stop this process's agent answering look-ups of the
// names it already serves: a registration never waits for the directory lock while it holds the
// namespace's mutex, which answers need. The look-up here has 10 s; it needs milliseconds.
func TestLookUpsAreAnsweredWhileARegistrationWaitsForTheDirectoryLock(t *testing.T) {
	served := uniqueName(t)
	register(t, served, nil)
	ino, release := holdNamesLock(t)
	regDone := make(chan error, 1)
	port := newPort(t)
	go func() {
		reg, err := bootstrap.Register(uniqueName(t), port, nil)
		if err == nil {
			reg.Close()
		}
		regDone <- err
	}()
	waitForLockWaiter(t, ino) // the registration waits for names.lock
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := bootstrap.LookUp(ctx, served)
	release()
	require.NoError(t, <-regDone)
	port.Close()
	require.NoError(t, err, "look-up of a name this process serves while one of its registrations waits")
	s.Close()
}

// A look-up that meets a dead owner's entries cleans them under names.lock, and returns when its
// context ends even while another process holds that lock. The test gives the cancelled look-up
// 10 s to return; it needs microseconds.
func TestLookUpMeetingStaleEntriesHonoursItsContext(t *testing.T) {
	name := uniqueName(t)
	sock, record, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	// A killed owner's entries: its agent's files are gone (swept), its link and record stay.
	dead := "a-1-0123456789abcdef"
	require.NoError(t, os.Symlink(filepath.Join("agents", dead+".sock"), sock))
	require.NoError(t, os.WriteFile(record, []byte(name+"\n1\n"+dead+"\n"), 0o600))
	ino, release := holdNamesLock(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		s, err := bootstrap.LookUp(ctx, name)
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	waitForLockWaiter(t, ino) // the look-up waits for names.lock
	cancel()
	select {
	case err = <-done:
		release()
	case <-time.After(10 * time.Second):
		release()
		err = <-done
		t.Fatalf("the cancelled look-up returned only once names.lock was released, with %v", err)
	}
	require.True(t, errors.Is(err, context.Canceled) || errors.Is(err, bootstrap.ErrUnknownService), "%v", err)
}

// lockWaiter reports whether /proc/locks shows a process blocked on the flock of inode ino.
func lockWaiter(t *testing.T, ino uint64) bool {
	t.Helper()
	suffix := ":" + strconv.FormatUint(ino, 10) + " "
	b, err := os.ReadFile("/proc/locks")
	require.NoError(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "-> FLOCK") && strings.Contains(l, suffix) {
			return true
		}
	}
	return false
}

// Withdrawing the last name of a process (Registration.Close, or closing the port, whose watch
// withdraws the name) stops the agent without waiting for names.lock, which another process may
// hold for as long as it likes: the directory's tidying is left to the next clean-up that gets
// the lock. No time here: the test passes when Close returns, and fails when /proc/locks shows
// this process waiting for names.lock first. It runs in a namespace directory of its own: a
// look-up of an earlier test that gave up waiting for the shared names.lock leaves a goroutine
// that waits on until it gets the lock (flockWait), and would count here as a waiter.
func TestCloseOfTheLastNameDoesNotWaitForTheDirectoryLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ns")
	require.NoError(t, os.Mkdir(dir, 0o700))
	t.Setenv(bootstrap.EnvDir, dir)
	served, err := bootstrap.ServedBy(os.Getpid())
	require.NoError(t, err)
	require.Empty(t, served, "the test needs a process that serves no other name")
	port := newPort(t)
	reg, err := bootstrap.Register(uniqueName(t), port, nil)
	require.NoError(t, err)
	ino, release := holdNamesLock(t)
	closed := make(chan error, 1)
	go func() { closed <- reg.Close() }()
	for {
		select {
		case err := <-closed:
			require.NoError(t, err)
			port.Close()
			return
		default:
		}
		if lockWaiter(t, ino) {
			release()
			<-closed
			port.Close()
			t.Fatal("Registration.Close waited for names.lock, which another process held")
		}
		time.Sleep(time.Millisecond)
	}
}
