package peer

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// token makes an audit token as the emulation fills it (xnu's layout: euid at 1, egid at 2, pid
// at 5).
func token(pid int, uid, gid uint32) mach.AuditToken {
	return mach.AuditToken{uid, uid, gid, uid, gid, uint32(pid), 0, 0}
}

// fakeProc is a /proc whose processes a test sets, and which counts the executable look-ups.
type fakeProc struct {
	procs    map[int]fakeProcess
	exeReads int
	// afterExe, when set, runs after each executable read (a pid reused mid-look-up).
	afterExe func()
}

type fakeProcess struct {
	start uint64
	exe   string
	uid   uint32
}

func (f *fakeProc) stat(pid int) ([]byte, error) {
	p, ok := f.procs[pid]
	if !ok {
		return nil, os.ErrNotExist
	}
	// A command name with a space and a parenthesis, as a process may choose.
	return fmt.Appendf(nil, "%d (a) b) S 1 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 %d 1000 100", pid, p.start), nil
}

func (f *fakeProc) exe(pid int) (string, error) {
	p, ok := f.procs[pid]
	if !ok {
		return "", os.ErrNotExist
	}
	f.exeReads++
	if f.afterExe != nil {
		f.afterExe()
	}
	return p.exe, nil
}

func (f *fakeProc) status(pid int) ([]byte, error) {
	p, ok := f.procs[pid]
	if !ok {
		return nil, os.ErrNotExist
	}
	return fmt.Appendf(nil, "Name:\ta\nUid:\t%d\t%d\t%d\t%d\nGid:\t0\t0\t0\t0\n", p.uid, p.uid, p.uid, p.uid), nil
}

func TestTokenPredicates(t *testing.T) {
	tok := token(100, 501, 20)
	for _, tc := range []struct {
		name   string
		preds  []Predicate
		failed string // the predicate named by the failure; "" for a pass
		cause  error
	}{
		{"uid passes", []Predicate{UID(501)}, "", nil},
		{"uid among several", []Predicate{UID(0, 501)}, "", nil},
		{"uid fails", []Predicate{UID(502)}, "uid == 502", ErrUIDMismatch},
		{"gid passes", []Predicate{GID(20)}, "", nil},
		{"gid fails", []Predicate{GID(0, 80)}, "gid in [0 80]", ErrGIDMismatch},
		{"pid passes", []Predicate{PID(100)}, "", nil},
		{"pid fails", []Predicate{PID(101)}, "pid == 101", ErrPIDMismatch},
		{"the failing one of several", []Predicate{UID(501), GID(21), PID(100)}, "gid == 21", ErrGIDMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := newWith(procSystem{fs: &fakeProc{}}, tc.preds)
			require.NoError(t, err)
			err = r.Check(tok)
			if tc.failed == "" {
				require.NoError(t, err)
				return
			}
			var ce *CheckError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tc.failed, ce.Predicate)
			require.ErrorIs(t, err, tc.cause)
			require.Contains(t, err.Error(), tc.failed)
		})
	}
}

// The kernel is no peer: a zero token fails any requirement.
func TestKernelTokenFails(t *testing.T) {
	r, err := New(UID(0))
	require.NoError(t, err)
	require.ErrorIs(t, r.Check(mach.AuditToken{}), ErrProcessGone)
}

func TestNewRefusesWhatCannotBeChecked(t *testing.T) {
	for _, tc := range []struct {
		name  string
		preds []Predicate
		cause error
	}{
		{"nothing", nil, ErrInvalidRequirement},
		{"nil predicate", []Predicate{nil}, ErrInvalidRequirement},
		{"no uids", []Predicate{UID()}, ErrInvalidRequirement},
		{"relative executable", []Predicate{Executable("bin/x")}, ErrInvalidRequirement},
		{"empty code signing", []Predicate{CodeSigning(" ")}, ErrInvalidRequirement},
		// No code signing on Linux: refused, never treated as met.
		{"code signing on Linux", []Predicate{UID(0), CodeSigning(`identifier "com.example"`)}, errors.ErrUnsupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(tc.preds...)
			require.ErrorIs(t, err, tc.cause)
			require.Nil(t, r)
		})
	}
}

func TestExecutable(t *testing.T) {
	fp := &fakeProc{procs: map[int]fakeProcess{
		100: {start: 7, exe: "/usr/bin/good", uid: 501},
		200: {start: 9, exe: "/usr/bin/bad", uid: 501},
	}}
	r, err := newWith(procSystem{fs: fp}, []Predicate{UID(501), Executable("/usr/bin/../bin/good")})
	require.NoError(t, err)
	require.NoError(t, r.Check(token(100, 501, 20)))
	err = r.Check(token(200, 501, 20))
	require.ErrorIs(t, err, ErrExecutableMismatch)
	require.ErrorContains(t, err, `executable == "/usr/bin/../bin/good"`)
	require.ErrorContains(t, err, `/usr/bin/bad`)
	// A pid nobody has: the process is gone.
	require.ErrorIs(t, r.Check(token(300, 501, 20)), ErrProcessGone)
}

// The verdict on a process is looked up once: later messages from it cost a start-time read.
func TestVerdictIsCached(t *testing.T) {
	fp := &fakeProc{procs: map[int]fakeProcess{100: {start: 7, exe: "/good", uid: 501}, 200: {start: 8, exe: "/bad", uid: 501}}}
	r, err := newWith(procSystem{fs: fp}, []Predicate{Executable("/good")})
	require.NoError(t, err)
	for range 5 {
		require.NoError(t, r.Check(token(100, 501, 20)))
		require.ErrorIs(t, r.Check(token(200, 501, 20)), ErrExecutableMismatch)
	}
	require.Equal(t, 2, fp.exeReads)
}

// A pid recycled between two messages does not inherit the verdict on the process that had it:
// the cache key holds the start time, and the new process is looked up afresh.
func TestRecycledPIDDoesNotInheritVerdict(t *testing.T) {
	fp := &fakeProc{procs: map[int]fakeProcess{100: {start: 7, exe: "/good", uid: 501}}}
	r, err := newWith(procSystem{fs: fp}, []Predicate{Executable("/good")})
	require.NoError(t, err)
	require.NoError(t, r.Check(token(100, 501, 20)))
	fp.procs[100] = fakeProcess{start: 8, exe: "/bad", uid: 501} // exited; its pid went to another
	err = r.Check(token(100, 501, 20))
	require.ErrorIs(t, err, ErrExecutableMismatch)
	require.Equal(t, 2, fp.exeReads)
}

// A pid reused while it is looked up (between the start-time reads around the executable's)
// fails, and leaves no verdict behind.
func TestPIDReusedDuringLookUp(t *testing.T) {
	fp := &fakeProc{procs: map[int]fakeProcess{100: {start: 7, exe: "/good", uid: 501}}}
	fp.afterExe = func() { fp.procs[100] = fakeProcess{start: 8, exe: "/good", uid: 501} }
	r, err := newWith(procSystem{fs: fp}, []Predicate{Executable("/good")})
	require.NoError(t, err)
	require.ErrorIs(t, r.Check(token(100, 501, 20)), ErrProcessGone)
	require.Empty(t, r.cache)
}

// A pid now held by another user's process is not the sender's.
func TestPIDOfAnotherUser(t *testing.T) {
	fp := &fakeProc{procs: map[int]fakeProcess{100: {start: 7, exe: "/good", uid: 0}}}
	r, err := newWith(procSystem{fs: fp}, []Predicate{Executable("/good")})
	require.NoError(t, err)
	require.ErrorIs(t, r.Check(token(100, 501, 20)), ErrProcessGone)
}

// The real /proc: this process passes a requirement on its own executable and user, and fails
// one on another executable.
func TestThisProcess(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	exe, err = filepath.EvalSymlinks(exe)
	require.NoError(t, err)
	tok := token(os.Getpid(), uint32(os.Geteuid()), uint32(os.Getegid()))
	r, err := New(UID(uint32(os.Geteuid())), Executable(exe))
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.Check(tok))
	require.NoError(t, r.Check(tok)) // from the cache
	other, err := New(Executable("/nonexistent/other"))
	require.NoError(t, err)
	defer other.Close()
	require.ErrorIs(t, other.Check(tok), ErrExecutableMismatch)
}

func TestStartTime(t *testing.T) {
	for _, tc := range []struct {
		stat string
		want uint64
		ok   bool
	}{
		{"1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 42 1000 100", 42, true},
		{"5 (a) ) b) S 0 1 1 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 43 1000", 43, true},
		{"5 (short) S 0 1", 0, false},
		{"no parenthesis", 0, false},
	} {
		got, err := startTime([]byte(tc.stat))
		if !tc.ok {
			require.ErrorIs(t, err, errBadStat, tc.stat)
			continue
		}
		require.NoError(t, err, tc.stat)
		require.Equal(t, tc.want, got)
	}
}

// A process checked once is then named by the pidfd kept on it; once it exits, the pidfd is
// closed and the pid no longer passes (its process is gone), and Close releases the rest.
func TestLiveProcessHandle(t *testing.T) {
	leakcheck.Check(t)
	sleep, err := exec.LookPath("sleep")
	require.NoError(t, err)
	sleep, err = filepath.EvalSymlinks(sleep)
	require.NoError(t, err)
	cmd := exec.Command(sleep, "60")
	require.NoError(t, cmd.Start())
	tok := token(cmd.Process.Pid, uint32(os.Geteuid()), uint32(os.Getegid()))
	self := token(os.Getpid(), uint32(os.Geteuid()), uint32(os.Getegid()))
	r, err := New(Executable(sleep))
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.Check(tok))
	require.NoError(t, r.Check(tok))
	require.ErrorIs(t, r.Check(self), ErrExecutableMismatch)
	live := r.sys.(procSystem).live
	live.mu.Lock()
	require.Len(t, live.byPID, 2)
	live.mu.Unlock()

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait() // reaped: the pid is free
	require.ErrorIs(t, r.Check(tok), ErrProcessGone)
	live.mu.Lock()
	require.Len(t, live.byPID, 1) // this process's
	live.mu.Unlock()
	require.NoError(t, r.Close())
	live.mu.Lock()
	require.Empty(t, live.byPID)
	live.mu.Unlock()
	require.ErrorIs(t, r.Check(self), ErrExecutableMismatch) // still usable
}

// Explain gives every predicate's verdict, not only the first failure, and leaves Check's cache
// as it was: a verdict explained is looked up afresh, and Check still looks the process up.
func TestExplain(t *testing.T) {
	fp := &fakeProc{procs: map[int]fakeProcess{100: {start: 7, exe: "/bad", uid: 501}}}
	r, err := newWith(procSystem{fs: fp}, []Predicate{UID(501), GID(21), Executable("/good"), PID(100)})
	require.NoError(t, err)
	v := r.Explain(token(100, 501, 20))
	require.Len(t, v, 4)
	want := []struct {
		pred  string
		cause error
	}{{"uid == 501", nil}, {"gid == 21", ErrGIDMismatch}, {"pid == 100", nil}, {`executable == "/good"`, ErrExecutableMismatch}}
	for i, w := range want {
		require.Equal(t, w.pred, v[i].Predicate)
		if w.cause == nil {
			require.NoError(t, v[i].Err, w.pred)
			continue
		}
		require.ErrorIs(t, v[i].Err, w.cause, w.pred)
		var ce *CheckError
		require.ErrorAs(t, v[i].Err, &ce)
		require.Equal(t, w.pred, ce.Predicate)
	}
	require.Empty(t, r.cache)
	require.Equal(t, 1, fp.exeReads)
	// Check answers as without Explain, and fills the cache itself.
	require.ErrorIs(t, r.Check(token(100, 501, 20)), ErrGIDMismatch)

	// A process that is gone fails every predicate on the process, and no cached pass survives it.
	pass, err := newWith(procSystem{fs: fp}, []Predicate{Executable("/bad")})
	require.NoError(t, err)
	require.NoError(t, pass.Explain(token(100, 501, 20))[0].Err)
	require.Empty(t, pass.cache) // Explain filled no cache entry...
	reads := fp.exeReads
	require.NoError(t, pass.Check(token(100, 501, 20)))
	require.Equal(t, reads+1, fp.exeReads) // ...so Check looked the process up itself
	require.NoError(t, pass.Explain(token(100, 501, 20))[0].Err)
	require.Equal(t, reads+2, fp.exeReads) // and Explain does not read the cache Check filled
	delete(fp.procs, 100)
	v = pass.Explain(token(100, 501, 20))
	require.Len(t, v, 1)
	require.ErrorIs(t, v[0].Err, ErrProcessGone)
	// The kernel: every predicate fails.
	for _, v := range r.Explain(mach.AuditToken{}) {
		require.ErrorIs(t, v.Err, ErrProcessGone)
	}
}

// TokenForPID reads a live process's identity from /proc: this process's, as its messages carry
// it; a pid nobody has is gone.
func TestTokenForPID(t *testing.T) {
	tok, err := TokenForPID(os.Getpid())
	require.NoError(t, err)
	require.Equal(t, os.Getpid(), tok.PID())
	require.Equal(t, uint32(os.Geteuid()), tok.EUID())
	require.Equal(t, uint32(os.Getegid()), tok.EGID())
	require.Equal(t, uint32(os.Getuid()), tok.RUID())
	require.Equal(t, uint32(os.Getgid()), tok.RGID())
	exe, err := os.Readlink("/proc/self/exe")
	require.NoError(t, err)
	r, err := Parse(fmt.Sprintf("uid=%d; exe=%s", os.Geteuid(), exe))
	require.NoError(t, err)
	defer r.Close()
	require.NoError(t, r.Check(tok))

	fp := &fakeProc{procs: map[int]fakeProcess{}}
	_, err = tokenFromProc(fp, 100)
	require.ErrorIs(t, err, ErrProcessGone)
	require.ErrorIs(t, err, os.ErrNotExist)
	_, err = TokenForPID(-1)
	require.ErrorIs(t, err, ErrProcessGone)
}
