//go:build linux

package bootstrap_test

// Adversarial review of the agent format (branch names): each test in review_*_linux_test.go
// fails on that branch.

import (
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
