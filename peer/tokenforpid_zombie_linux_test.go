//go:build linux

package peer

import (
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/stretchr/testify/require"
)

// TokenForPID's Darwin logic (process_libsystem.go, tokenForPID and refused) for a zombie: a
// child that exited and was not reaped yet. (A review finding: it was reported as
// fs.ErrPermission, and the double handed out the zombie's task name.)
//
// xnu's task_name_for_pid (bsd/vm/vm_unix.c) answers KERN_FAILURE when p->p_stat == SZOMB, and
// xnu's kill(2) (bsd/kern/kern_sig.c, kill: pzfind) returns 0 for a zombie, as POSIX requires.
// So kill(pid, 0) alone finds "a process has the pid"; proc_pidpath, which finds no zombie
// (proc_pidinfo: proc_find), tells the caller's own exited child, gone (ErrProcessGone and
// fs.ErrNotExist), from a live process it may not read (fs.ErrPermission).
//
// The double (libsystemdouble/task.go, taskNameForPID, and security.go, process) counts a zombie
// as gone, as xnu's look-ups by pid do.
func TestDarwinTokenForPIDZombie(t *testing.T) {
	cmd := exec.Command("/bin/true")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Wait() })
	waitZombie(t, pid)

	t.Run("the double refuses a zombie's task name, as xnu does", func(t *testing.T) {
		sys := doubleSystem(t)
		_, err := sys.tokenForPID(pid)
		require.ErrorIs(t, err, ErrProcessGone, "xnu: task_name_for_pid fails for SZOMB")
		require.ErrorIs(t, err, fs.ErrNotExist)
		require.Zero(t, libsystemdouble.TaskNames(), "no task name left behind")
	})
	t.Run("a zombie is gone, not forbidden", func(t *testing.T) {
		sys := doubleSystem(t)
		// task_name_for_pid answers KERN_FAILURE, as xnu does for a zombie; kill(pid, 0) is the
		// real one, which succeeds for a zombie on Linux as on macOS.
		t.Cleanup(libsystemdouble.SetProcess(pid, &libsystemdouble.Process{Gone: true}))
		_, err := sys.tokenForPID(pid)
		require.ErrorIs(t, err, ErrProcessGone, "the caller's own exited child")
		require.NotErrorIs(t, err, fs.ErrPermission)
	})
}

// On Linux too a zombie is gone: TokenForPID reads "State: Z" in /proc/PID/status and fails
// with ErrProcessGone, so check-peer answers alike on both systems.
func TestTokenForPIDZombie(t *testing.T) {
	cmd := exec.Command("/bin/true")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	t.Cleanup(func() { _ = cmd.Wait() })
	waitZombie(t, pid)
	_, err := TokenForPID(pid)
	require.ErrorIs(t, err, ErrProcessGone)
	require.ErrorIs(t, err, fs.ErrNotExist)

	tok, err := TokenForPID(os.Getpid())
	require.NoError(t, err, "a live process is not taken for a zombie")
	require.Equal(t, os.Getpid(), tok.PID())
}

// waitZombie waits until pid has exited and is not reaped yet (state Z in /proc/PID/stat).
func waitZombie(t *testing.T, pid int) {
	t.Helper()
	for range 10000 {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		require.NoError(t, err)
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("pid %d never became a zombie", pid)
}
