//go:build linux

package peer

import (
	"io/fs"
	"os"
	"testing"

	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/stretchr/testify/require"
)

// Hostile input to TokenForPID (process_libsystem.go tokenForPID; a review finding): a pid that
// does not fit pid_t was truncated by int32(pid) before task_name_for_pid, so 1<<32 + os.Getpid()
// read this process's task and failed with an error that wrapped neither ErrProcessGone nor
// fs.ErrNotExist. No process has such a pid (xnu's PID_MAX is 99999): it fails up front as
// pid <= 0 does (and as the Linux implementation, which finds no /proc entry), with
// ErrProcessGone and fs.ErrNotExist, without asking the kernel for another process's task.
func TestDarwinTokenForPIDOutOfRange(t *testing.T) {
	sys := doubleSystem(t)
	for _, pid := range []int{1<<32 + os.Getpid(), 1 << 31} {
		_, err := sys.tokenForPID(pid)
		require.ErrorIs(t, err, ErrProcessGone, "pid %d", pid)
		require.ErrorIs(t, err, fs.ErrNotExist, "pid %d", pid)
		require.Zero(t, libsystemdouble.TaskNames())
	}
}
