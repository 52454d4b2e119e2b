package peer

import (
	"bytes"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// The macOS look-ups (process_libsystem.go) over the libSystem double, in this process: each test
// installs the double and calls the Darwin logic directly. (process_double_linux.go is the seam
// that switches the whole package when a test binary calls UseDarwinLogic, as machping's
// check-peer tests do.)

// doubleSystem is the Darwin logic with nothing to load: the double is installed already.
func doubleSystem(t *testing.T) darwinSystem {
	t.Helper()
	libsystemdouble.Install()
	t.Cleanup(libsystemdouble.Reset)
	return doubleHostSystem()
}

// darwinToken is this process's audit token with pid version v, as the kernel would write it.
func darwinToken(v uint32) mach.AuditToken {
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	return mach.AuditToken{uid, uid, gid, uid, gid, uint32(os.Getpid()), 0, v}
}

// describe makes this process, for the double, the one p describes, until the test ends.
func describe(t *testing.T, p *libsystemdouble.Process) {
	t.Helper()
	t.Cleanup(libsystemdouble.SetProcess(os.Getpid(), p))
}

// collected makes the garbage collector run until the CF objects are back to want, which the
// cleanups of the requirements the caller dropped bring about. It fails after a bounded number of
// collections, never after a time.
func collected(t *testing.T, want int) {
	t.Helper()
	for range 1000 {
		if libsystemdouble.CFObjects() == want {
			return
		}
		runtime.GC()
		runtime.Gosched()
	}
	require.Equal(t, want, libsystemdouble.CFObjects(), "CF objects left after the requirements were collected")
}

var (
	selfHash  = bytes.Repeat([]byte{0xa1}, 20)
	otherHash = bytes.Repeat([]byte{0xb2}, 20)
)

func cdhash(h []byte) string { return `cdhash H"` + hex.EncodeToString(h) + `"` }

// teamReq is the requirement Apple documents for "signed by my team": an Apple-issued
// certificate whose leaf's subject OU is the team id.
const teamReq = `anchor apple generic and certificate leaf[subject.OU] = "TEAMID"`

var (
	teamSig      = libsystemdouble.DeveloperID("com.example.helper", "TEAMID", selfHash)
	otherTeamSig = libsystemdouble.DeveloperID("com.example.helper", "OTHERTEAM", selfHash)
)

// A code-signing requirement passes the process whose signature satisfies it and fails every
// other (another identifier, another cdhash, one of two clauses unmet, no signature, another
// team, ad hoc code where a team is required), through
// SecRequirementCreateWithString, SecCodeCopyGuestWithAttributes and SecCodeCheckValidity. Each
// check leaves only the parsed requirement alive, which is released when it is collected.
func TestDarwinCodeSigningThroughDouble(t *testing.T) {
	signed := &libsystemdouble.Signature{Identifier: "com.example.helper", CDHash: selfHash}
	cases := []struct {
		name string
		sig  *libsystemdouble.Signature
		req  string
		ok   bool
	}{
		{"identifier", signed, `identifier "com.example.helper"`, true},
		{"identifier with =", signed, `identifier = "com.example.helper"`, true},
		{"another identifier", signed, `identifier "com.example.other"`, false},
		{"cdhash", signed, cdhash(selfHash), true},
		{"another cdhash", signed, cdhash(otherHash), false},
		{"both", signed, `identifier "com.example.helper" and ` + cdhash(selfHash), true},
		{"one of two", signed, `identifier "com.example.helper" and ` + cdhash(otherHash), false},
		{"unsigned", nil, `identifier "com.example.helper"`, false},
		{"team, Developer ID", teamSig, teamReq, true},
		{"another team", otherTeamSig, teamReq, false},
		{"team, ad hoc", signed, teamReq, false},
		{"team or identifier", signed, teamReq + ` or identifier "com.example.helper"`, true},
		{"not Apple's own", teamSig, `anchor apple generic and !anchor apple`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sys := doubleSystem(t)
			describe(t, &libsystemdouble.Process{Version: 7, Signature: tc.sig})
			before := libsystemdouble.CFObjects()
			func() {
				r, err := newWith(sys, []Predicate{CodeSigning(tc.req)})
				require.NoError(t, err)
				err = r.Check(darwinToken(7))
				if tc.ok {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, ErrCodeSigningFailed)
					var ce *CheckError
					require.ErrorAs(t, err, &ce)
					require.Equal(t, CodeSigning(tc.req).String(), ce.Predicate)
				}
				require.Equal(t, before+1, libsystemdouble.CFObjects(), "only the parsed requirement is left")
			}()
			collected(t, before)
		})
	}
}

// A requirement that does not parse is an error at construction (errSecCSReqInvalid from
// SecRequirementCreateWithString), never a requirement that lets everyone in, and the CFString
// made for it is released.
func TestDarwinRequirementSyntaxThroughDouble(t *testing.T) {
	for _, text := range []string{
		`identifier "com.example" and and`,
		`identifier "com.example" or`,
		`identifier`,
		`cdhash H"zz"`,
		`cdhash "a1a1"`,
		`identifer "com.example"`,
		`anchor apple generic and certificate leaf[issuer.OU] = "TEAMID"`,
		`anchor apple generic and (certificate leaf[subject.OU] = "TEAMID"`,
		`not anchor apple`,
	} {
		t.Run(text, func(t *testing.T) {
			sys := doubleSystem(t)
			before := libsystemdouble.CFObjects()
			r, err := newWith(sys, []Predicate{CodeSigning(text)})
			require.ErrorIs(t, err, ErrInvalidRequirement)
			require.Nil(t, r)
			require.Equal(t, before, libsystemdouble.CFObjects())
		})
	}
}

// Every CF object the check makes (the CFString of the text, the CFData of the token, the
// CFDictionary of the attributes, the SecCode of the guest, the SecRequirement) is released on
// every path: when each call fails, when the process is gone or its pid reused between two calls,
// and, for the SecRequirement, when the requirement is collected. A failed look-up is no verdict
// (a later check looks the process up again and passes); a failed validity check is one.
func TestDarwinCFReleasedOnEveryPathThroughDouble(t *testing.T) {
	signed := &libsystemdouble.Process{Version: 7, Signature: &libsystemdouble.Signature{Identifier: "com.example.helper", CDHash: selfHash}}
	reused := &libsystemdouble.Process{Version: 8, Signature: signed.Signature}
	fault := func(call string, code int32) func() {
		return func() { libsystemdouble.Inject(libsystemdouble.Fault{Call: call, Code: code}) }
	}
	cases := []struct {
		name   string
		arm    func() // arms the failure before the check
		err    error  // the check's error
		cached bool   // a failure that is a verdict
	}{
		{name: "success", arm: func() {}},
		{name: "csops_audittoken before", arm: fault("csops_audittoken", -1), err: ErrProcessGone},
		{name: "csops_audittoken after", arm: func() {
			libsystemdouble.After("proc_pidpath", 0, fault("csops_audittoken", -1))
		}, err: ErrProcessGone},
		{name: "proc_pidpath", arm: fault("proc_pidpath", -1), err: ErrProcessGone},
		{name: "CFDataCreate", arm: fault("CFDataCreate", 1), err: ErrProcessGone},
		{name: "CFDictionaryCreate", arm: fault("CFDictionaryCreate", 1), err: ErrProcessGone},
		{name: "SecCodeCopyGuestWithAttributes", arm: fault("SecCodeCopyGuestWithAttributes", -67065), err: ErrProcessGone},
		{name: "pid reused before the guest is made", arm: func() {
			libsystemdouble.After("CFDictionaryCreate", 0, func() { libsystemdouble.SetProcess(os.Getpid(), reused) })
		}, err: ErrProcessGone},
		{name: "SecCodeCheckValidity", arm: fault("SecCodeCheckValidity", -67061), err: ErrCodeSigningFailed, cached: true},
		{name: "process exits before the validity check", arm: func() {
			libsystemdouble.After("SecCodeCopyGuestWithAttributes", 0, func() {
				libsystemdouble.SetProcess(os.Getpid(), &libsystemdouble.Process{Gone: true})
			})
		}, err: ErrCodeSigningFailed, cached: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sys := doubleSystem(t)
			describe(t, signed)
			before := libsystemdouble.CFObjects()
			func() {
				r, err := newWith(sys, []Predicate{CodeSigning(`identifier "com.example.helper"`)})
				require.NoError(t, err)
				tc.arm()
				err = r.Check(darwinToken(7))
				if tc.err == nil {
					require.NoError(t, err)
				} else {
					require.ErrorIs(t, err, tc.err)
				}
				require.Equal(t, before+1, libsystemdouble.CFObjects(), "only the parsed requirement is left")
				libsystemdouble.Reset()
				libsystemdouble.SetProcess(os.Getpid(), signed)
				if tc.err == nil || !tc.cached {
					require.NoError(t, r.Check(darwinToken(7)), "a failed look-up is no verdict")
				} else {
					require.ErrorIs(t, r.Check(darwinToken(7)), tc.err, "the verdict is cached")
				}
				require.Equal(t, before+1, libsystemdouble.CFObjects())
			}()
			collected(t, before)
		})
	}
	// The CFString of the text, when SecRequirementCreateWithString fails and when making it
	// fails.
	for _, call := range []string{"SecRequirementCreateWithString", "CFStringCreateWithCString"} {
		t.Run(call, func(t *testing.T) {
			sys := doubleSystem(t)
			before := libsystemdouble.CFObjects()
			libsystemdouble.Inject(libsystemdouble.Fault{Call: call, Code: -67052})
			_, err := newWith(sys, []Predicate{CodeSigning(`identifier "com.example.helper"`)})
			require.ErrorIs(t, err, ErrInvalidRequirement)
			require.Equal(t, before, libsystemdouble.CFObjects())
		})
	}
}

// The executable predicate through csops_audittoken and proc_pidpath: this process's path (from
// /proc, or the one the double is told) passes and another fails; a token whose pid version is
// not the process's (csops_audittoken's ESRCH), a process that is gone, and a pid reused between
// the two csops_audittoken calls around proc_pidpath fail as gone and leave no verdict.
func TestDarwinExecutableThroughDouble(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	self, err = filepath.EvalSymlinks(self)
	require.NoError(t, err)
	const app = "/Applications/Example.app/Contents/MacOS/Example"
	cases := []struct {
		name    string
		proc    *libsystemdouble.Process // nil: /proc, version 0
		version uint32                   // the token's pid version
		exe     string
		during  func() // runs after proc_pidpath
		err     error
	}{
		{name: "this executable from /proc", exe: self},
		{name: "another executable", exe: "/usr/bin/true", err: ErrExecutableMismatch},
		{name: "the path proc_pidpath gives", proc: &libsystemdouble.Process{Version: 3, Path: app}, version: 3, exe: app},
		{name: "pid version mismatch", proc: &libsystemdouble.Process{Version: 3, Path: app}, version: 2, exe: app, err: ErrProcessGone},
		{name: "gone", proc: &libsystemdouble.Process{Version: 3, Path: app, Gone: true}, version: 3, exe: app, err: ErrProcessGone},
		{name: "pid reused during the look-up", proc: &libsystemdouble.Process{Version: 3, Path: app}, version: 3, exe: app,
			during: func() { libsystemdouble.SetProcess(os.Getpid(), &libsystemdouble.Process{Version: 4, Path: app}) },
			err:    ErrProcessGone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sys := doubleSystem(t)
			if tc.proc != nil {
				describe(t, tc.proc)
			}
			if tc.during != nil {
				libsystemdouble.After("proc_pidpath", 0, tc.during)
			}
			before := libsystemdouble.CFObjects()
			r, err := newWith(sys, []Predicate{Executable(tc.exe)})
			require.NoError(t, err)
			err = r.Check(darwinToken(tc.version))
			if tc.err == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tc.err)
			}
			if tc.err == ErrProcessGone {
				require.Empty(t, r.cache, "a process that is gone leaves no verdict")
			}
			require.Equal(t, before, libsystemdouble.CFObjects(), "no CF object for an executable")
		})
	}
}

// TokenForPID's macOS logic through task_name_for_pid and task_info(TASK_AUDIT_TOKEN): the token
// carries the pid version; no such pid is ErrProcessGone and fs.ErrNotExist, a refusal
// fs.ErrPermission; a process that exits, or whose pid is reused, between the two calls gives no
// token (never the new process's); a failing call is an error. The task name is deallocated on
// every path.
func TestDarwinTokenForPIDThroughDouble(t *testing.T) {
	self := os.Getpid()
	cases := []struct {
		name    string
		proc    *libsystemdouble.Process
		pid     int
		arm     func()
		version uint32 // the token's, when it succeeds
		err     error
		is      error // a second sentinel the error must wrap
	}{
		{name: "this process from /proc", pid: self},
		{name: "described, with its pid version", proc: &libsystemdouble.Process{Version: 7}, pid: self, version: 7},
		{name: "no such pid", pid: 1 << 30, err: ErrProcessGone, is: fs.ErrNotExist},
		{name: "not a pid", pid: -1, err: ErrProcessGone, is: fs.ErrNotExist},
		{name: "refused", proc: &libsystemdouble.Process{Version: 7, Denied: true}, pid: self, is: fs.ErrPermission},
		{name: "exits between the calls", proc: &libsystemdouble.Process{Version: 7}, pid: self, arm: func() {
			libsystemdouble.After("task_name_for_pid", 0, func() {
				libsystemdouble.SetProcess(self, &libsystemdouble.Process{Version: 7, Gone: true})
			})
		}, err: ErrProcessGone, is: fs.ErrNotExist},
		{name: "pid reused between the calls", proc: &libsystemdouble.Process{Version: 7}, pid: self, arm: func() {
			libsystemdouble.After("task_name_for_pid", 0, func() {
				libsystemdouble.SetProcess(self, &libsystemdouble.Process{Version: 8})
			})
		}, err: ErrProcessGone},
		{name: "task_info fails", pid: self, arm: func() {
			libsystemdouble.Inject(libsystemdouble.Fault{Call: "task_info", Code: abi.KERN_FAILURE})
		}},
		{name: "its task is torn down: MACH_PORT_DEAD", proc: &libsystemdouble.Process{Version: 7, TaskDead: true}, pid: self,
			err: ErrProcessGone, is: fs.ErrNotExist},
		{name: "task_name_for_pid refuses a live process", pid: self, arm: func() {
			libsystemdouble.Inject(libsystemdouble.Fault{Call: "task_name_for_pid", Code: abi.KERN_FAILURE})
		}, is: fs.ErrPermission},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sys := doubleSystem(t)
			if tc.proc != nil {
				describe(t, tc.proc)
			}
			if tc.arm != nil {
				tc.arm()
			}
			before := libsystemdouble.TaskNames()
			tok, err := sys.tokenForPID(tc.pid)
			require.Equal(t, before, libsystemdouble.TaskNames(), "a task name is left")
			if tc.err == nil && tc.is == nil && tc.arm == nil {
				require.NoError(t, err)
				want := darwinToken(tc.version)
				want[0] = ^uint32(0) // the double's processes have no audit user
				require.Equal(t, want, tok)
				return
			}
			require.Error(t, err)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
			}
			if tc.is != nil {
				require.ErrorIs(t, err, tc.is)
			}
		})
	}
}

// A token TokenForPID read is the process that was: once its pid is reused (another pid
// version), a look-up by the token fails as gone instead of judging the new process, and leaves
// no verdict.
func TestDarwinTokenForPIDThenPIDReused(t *testing.T) {
	sys := doubleSystem(t)
	const app = "/Applications/Example.app/Contents/MacOS/Example"
	describe(t, &libsystemdouble.Process{Version: 7, Path: app})
	tok, err := sys.tokenForPID(os.Getpid())
	require.NoError(t, err)
	require.Equal(t, uint32(7), uint32(tok.PIDVersion()))
	r, err := newWith(sys, []Predicate{Executable(app)})
	require.NoError(t, err)
	require.NoError(t, r.Check(tok))
	libsystemdouble.SetProcess(os.Getpid(), &libsystemdouble.Process{Version: 8, Path: app})
	r2, err := newWith(sys, []Predicate{Executable(app)})
	require.NoError(t, err)
	require.ErrorIs(t, r2.Check(tok), ErrProcessGone)
	require.Empty(t, r2.cache)
}
