//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/stretchr/testify/require"
)

// envMainOverDouble makes this test binary, re-executed, be machping with machport's Darwin logic
// over the libSystem double (libsystemdouble.UseDarwinLogic): check-peer then reads the process's
// identity as on macOS, through task_name_for_pid and task_info(TASK_AUDIT_TOKEN), and looks it
// up through csops_audittoken, proc_pidpath and Security's calls.
const envMainOverDouble = "MACHPING_TEST_MAIN_OVER_DOUBLE"

func init() {
	if os.Getenv(envMainOverDouble) == "1" {
		libsystemdouble.UseDarwinLogic()
		main()
	}
}

// runOverDouble runs machping's main in this test binary, over the double, with cred (nil: this
// process's user).
func runOverDouble(t *testing.T, bin string, cred *syscall.Credential, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), envMainOverDouble+"=1")
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("%v: %v", args, err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// check-peer through the macOS logic: the same verdicts and output as on Linux for this test's
// own process (the same golden files), a code-signing predicate that Linux refuses checked (the
// process is unsigned: it fails), no such process exit 2, and a process whose task this user may
// not name (task_name_for_pid's refusal) exit 4.
func TestCheckPeerOverDouble(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	exe, err := os.Readlink("/proc/self/exe")
	require.NoError(t, err)
	pid := strconv.Itoa(os.Getpid())
	uid, gid := os.Geteuid(), os.Getegid()

	pass := fmt.Sprintf("uid=%d; gid=%d; pid=%s; exe=%s", uid, gid, pid, exe)
	r := runOverDouble(t, self, nil, "check-peer", pid, pass)
	requireCode(t, r, exitOK)
	golden(t, "check-peer-pass.golden", normCheckPeer(r.stdout, exe))

	fail := fmt.Sprintf("exe=/nonexistent; uid=%d,%d; pid=%s", uid+1, uid+2, pid)
	r = runOverDouble(t, self, nil, "check-peer", pid, fail)
	requireCode(t, r, exitNegative)
	golden(t, "check-peer-fail.golden", normCheckPeer(r.stdout, exe))

	r = runOverDouble(t, self, nil, "check-peer", pid, `uid=`+strconv.Itoa(uid)+`; cs=identifier "com.example.helper"`)
	requireCode(t, r, exitNegative)
	golden(t, "check-peer-double-cs.golden", normCheckPeer(r.stdout, exe))

	r = runOverDouble(t, self, nil, "check-peer", strconv.Itoa(1<<30), "uid=0")
	requireCode(t, r, exitError)
	require.Contains(t, r.stderr, fmt.Sprintf("cannot read the identity of pid %d: no such process", 1<<30))

	// Another user's process: pid 1 as this user, or, as root (who may name every task), this
	// process as nobody, from a copy of the binary nobody can run.
	target, bin, cred := "1", self, (*syscall.Credential)(nil)
	if os.Geteuid() == 0 {
		dir := t.TempDir()
		require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
		require.NoError(t, os.Chmod(dir, 0o755))
		bin = filepath.Join(dir, "machping-over-double")
		copyFile(t, self, bin)
		target, cred = pid, &syscall.Credential{Uid: 65534, Gid: 65534}
	}
	r = runOverDouble(t, bin, cred, "check-peer", target, "uid=0")
	requireCode(t, r, exitRefused)
	require.Contains(t, r.stderr, "cannot read the identity of pid "+target+": not permitted to inspect the process")
	require.Contains(t, r.stderr, "task_name_for_pid")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}
