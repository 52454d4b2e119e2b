//go:build linux

package peer

import (
	"io/fs"
	"os"
	"testing"

	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/stretchr/testify/require"
)

// Review finding (hostile input to TokenForPID, process_libsystem.go tokenForPID): a pid that
// does not fit pid_t is truncated by int32(pid) before task_name_for_pid, so 1<<32 + os.Getpid()
// reads this process's task, and the answer is a bare "task_info gave the token of pid N" error
// that wraps neither ErrProcessGone nor fs.ErrNotExist; only the final t.PID() != pid test keeps
// the wrong token from being returned. No process has such a pid (xnu's PID_MAX is 99999): it
// should fail up front as pid <= 0 does, with ErrProcessGone and fs.ErrNotExist, and without
// asking the kernel for another process's task.
func TestReviewTokenForPIDOutOfRange(t *testing.T) {
	sys := doubleSystem(t)
	for _, pid := range []int{1<<32 + os.Getpid(), 1 << 31} {
		_, err := sys.tokenForPID(pid)
		require.ErrorIs(t, err, ErrProcessGone, "pid %d", pid)
		require.ErrorIs(t, err, fs.ErrNotExist, "pid %d", pid)
		require.Zero(t, libsystemdouble.TaskNames())
	}
}
