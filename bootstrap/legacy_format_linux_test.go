//go:build linux

package bootstrap_test

import (
	"fmt"
	"net"
	"os"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// While a process built before the agent format runs beside one built after it, a name served
// in the agent format stays taken for the earlier registrant: each served name has a symbolic
// link at <key>.lock, so the earlier format's lockName (open O_CREAT|O_NOFOLLOW, then flock: see
// fa39100's namespace_linux.go) fails with ELOOP instead of taking the name a second time. The
// test plays the earlier registrant's first step.
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

// Owner and ServedBy see a live earlier-format owner (its record in its held <key>.lock), as
// Register does when it refuses the name with 1100. The test plays a live earlier-format owner:
// its record in its held lock, and its listening socket at the name's path.
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
