package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// check-peer reads a process's identity from /proc and gives each predicate's verdict: this
// test's own process, with a requirement it meets (exit 0) and one it fails in part (exit 1,
// the passing predicates still listed); no such process exits 2, as rights --pid does.
func TestCheckPeer(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	require.NoError(t, err)
	pid := strconv.Itoa(os.Getpid())
	uid, gid := os.Geteuid(), os.Getegid()
	norm := func(s string) string { return normCheckPeer(s, exe) }

	pass := fmt.Sprintf("uid=%d; gid=%d; pid=%s; exe=%s", uid, gid, pid, exe)
	r := runMachping(t, nil, "check-peer", pid, pass)
	requireCode(t, r, exitOK)
	golden(t, "check-peer-pass.golden", norm(r.stdout))

	fail := fmt.Sprintf("exe=/nonexistent; uid=%d,%d; pid=%s", uid+1, uid+2, pid)
	r = runMachping(t, nil, "check-peer", pid, fail)
	requireCode(t, r, exitNegative)
	golden(t, "check-peer-fail.golden", norm(r.stdout))

	r = runMachping(t, nil, "check-peer", "--json", pid, fail)
	requireCode(t, r, exitNegative)
	doc := decode[checkPeerDoc](t, r)
	require.Equal(t, os.Getpid(), doc.PID)
	require.Equal(t, uint32(uid), doc.UID)
	require.Equal(t, uint32(gid), doc.GID)
	require.False(t, doc.Pass)
	require.Equal(t, []verdictDoc{
		{Predicate: fmt.Sprintf("uid in [%d %d]", uid+1, uid+2), Got: fmt.Sprintf("uid %d", uid), Error: "peer: user does not match"},
		{Predicate: "pid == " + pid, Pass: true},
		{Predicate: `executable == "/nonexistent"`, Got: "executable " + strconv.Quote(exe), Error: "peer: executable does not match"},
	}, doc.Verdicts)

	r = runMachping(t, nil, "check-peer", "--json", pid, pass)
	requireCode(t, r, exitOK)
	require.True(t, decode[checkPeerDoc](t, r).Pass)

	r = runMachping(t, nil, "check-peer", strconv.Itoa(1<<30), "uid=0")
	requireCode(t, r, exitError)
	require.Contains(t, r.stderr, fmt.Sprintf("cannot read the identity of pid %d: no such process", 1<<30))
}

// A predicate this user cannot check (the executable of another user's process) is no verdict:
// check-peer prints what it could check and exits 4, as rights --pid does.
func TestCheckPeerNotPermitted(t *testing.T) {
	pid, expr := "1", "exe=/sbin/init"
	var cred *syscall.SysProcAttr
	if os.Geteuid() == 0 {
		// root may read every process: look at this one as nobody instead.
		require.NoError(t, os.Chmod(filepath.Dir(machping), 0o755))
		pid, expr = strconv.Itoa(os.Getpid()), "uid=0; exe=/nonexistent"
		cred = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	cmd := exec.Command(machping, "check-peer", pid, expr)
	cmd.SysProcAttr = cred
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	require.Equal(t, exitRefused, cmd.ProcessState.ExitCode(), "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.Contains(t, stdout.String(), "permission denied")
	require.Contains(t, stderr.String(), "machping: cannot check every predicate on pid "+pid+": not permitted to inspect the process\n  hint: "+permissionHint)
	if cred != nil {
		require.Contains(t, stdout.String(), "  pass  uid == 0\n", "what can be checked is")
	}
}

// normCheckPeer makes check-peer's output the same from run to run (and user to user): ids and
// pids, and the executable exe.
func normCheckPeer(s, exe string) string {
	s = normalize(s, exe)
	for _, r := range []struct{ re, with string }{
		{`\b(uid|gid|pid)(=| == )\d+(,\d+)*`, "${1}${2}N"},
		{`\b(uid|gid) in \[[\d ]+\]`, "$1 in [N...]"},
		{`\bgid \d+`, "gid GID"},
	} {
		s = regexp.MustCompile(r.re).ReplaceAllString(s, r.with)
	}
	return s
}
