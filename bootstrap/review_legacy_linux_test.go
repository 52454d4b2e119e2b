//go:build linux

package bootstrap_test

// Adversarial review of the agent format (branch names): each test in review_*_linux_test.go
// fails on that branch.

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// FINDING (low-medium; only while a process built before the redesign runs beside one built
// after it): the agent format honours a live earlier-format owner (its held <key>.lock makes the
// name taken), but not the other way round. A name served here holds no <key>.lock, so an
// earlier-format registrant's lockName (open O_CREAT|O_NOFOLLOW, flock LOCK_EX|LOCK_NB: see
// fa39100's namespace_linux.go) wins it, removes the link and listens in its place: two owners
// of one name, and this process's withdraw then removes the other's socket (unclaim removes by
// path). A cheap guard exists (a symbolic link at <key>.lock makes the earlier open fail with
// ELOOP), so the name can be defended without a descriptor per name. The test plays the
// earlier registrant's first step.
func TestEarlierFormatRegistrantFindsTheNameTaken(t *testing.T) {
	name := uniqueName(t)
	register(t, name, nil)
	lock, err := bootstrap.LegacyLockPath(name, 0)
	require.NoError(t, err)
	fd, err := unix.Open(lock, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err == nil {
		defer os.Remove(lock)
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		unix.Close(fd)
	}
	require.Error(t, err, "an earlier-format registrant took the lock of %q, which this process serves", name)
}

// FINDING (low): Owner and ServedBy no longer see a live earlier-format owner, which Register
// counts as serving the name (1100): Owner says no process serves a name that Register says
// another process serves. The earlier Owner read the record in <key>.lock; the agent format
// reads only <key>.owner. The test plays a live earlier-format owner: its record in its held
// lock, and its listening socket at the name's path.
func TestOwnerOfALiveEarlierFormatOwner(t *testing.T) {
	name := uniqueName(t)
	sock, _, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	lock, err := bootstrap.LegacyLockPath(name, 0)
	require.NoError(t, err)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	require.NoError(t, err)
	defer ln.Close()
	fd, err := unix.Open(lock, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	require.NoError(t, err)
	defer os.Remove(lock)
	defer unix.Close(fd)
	require.NoError(t, unix.Flock(fd, unix.LOCK_EX))
	_, err = unix.Write(fd, fmt.Appendf(nil, "%s\n%d\n", name, os.Getpid()))
	require.NoError(t, err)

	port := newPort(t)
	defer port.Close()
	_, err = bootstrap.Register(name, port, nil)
	var be *bootstrap.Error
	require.ErrorAs(t, err, &be)
	require.Equal(t, bootstrap.ErrNotPrivileged, be.Code, "the earlier-format owner serves the name")
	owner, known := bootstrap.Owner(name, 0)
	require.True(t, known, "Owner of a name Register says another process serves")
	require.Equal(t, os.Getpid(), owner)
	served, err := bootstrap.ServedBy(os.Getpid())
	require.NoError(t, err)
	require.Contains(t, served, name)
}
