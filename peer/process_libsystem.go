package peer

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"runtime"
	"syscall"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
)

// The macOS look-ups through libSystem, Security and CoreFoundation: the logic that calls
// internal/darwin's variables. It has no build tag on purpose: on macOS process_darwin.go binds
// the variables and installs it; on Linux the tests install the libSystem double behind the same
// variables (internal/darwin/libsystemdouble) and run it there (process_libsystem_linux.go).
// Status: builds for darwin/arm64 and darwin/amd64; executed on Linux against the double; it has
// not run on macOS yet.

// darwinSystem looks processes up through the kernel and Security.framework, by audit token.
type darwinSystem struct {
	// load binds libSystem's variables (darwin.Load) and reports why it could not.
	load func() error
	// loadSecurity binds Security's and CoreFoundation's (darwin.LoadSecurity), which only a
	// code-signing requirement needs.
	loadSecurity func() error
	// signal0 is kill(pid, 0), which tells TokenForPID's "no such process" from "not
	// permitted" when task_name_for_pid answers KERN_FAILURE for both; nil: it cannot tell.
	signal0 func(pid int) error
}

// Security's CSCommon.h (not in the SDK facts). CS_OPS_STATUS and PROC_PIDPATHINFO_MAXSIZE come
// from internal/abi, checked against the SDK.
const (
	errSecCSReqFailed  = -67050
	errSecCSNoSuchCode = -67065
)

// version is the token's pid version: the kernel's, nothing to read.
func (darwinSystem) version(tok mach.AuditToken) (uint64, error) {
	return uint64(tok.PIDVersion()), nil
}

var errNoBinding = errors.New("the system lacks a function the look-up needs")

// alive reports whether the token still names a live process: csops_audittoken fails with ESRCH
// when the pid is gone or its version is not the token's (csops_internal, xnu
// bsd/kern/kern_proc.c).
func alive(tok mach.AuditToken) error {
	if darwin.CsopsAudittoken == nil {
		return fmt.Errorf("csops_audittoken: %w", errNoBinding)
	}
	var status uint32
	t := [8]uint32(tok)
	if r := darwin.CsopsAudittoken(int32(tok.PID()), abi.CS_OPS_STATUS, unsafe.Pointer(&status), 4, &t); r != 0 {
		return fmt.Errorf("csops_audittoken(CS_OPS_STATUS) failed (%d): the token names no live process", r)
	}
	return nil
}

func (s darwinSystem) lookup(tok mach.AuditToken, _ uint64, code bool) (*process, error) {
	load := s.load
	if code {
		load = s.loadSecurity
	}
	if err := load(); err != nil {
		return nil, err
	}
	if darwin.ProcPidpath == nil {
		return nil, fmt.Errorf("proc_pidpath: %w", errNoBinding)
	}
	// proc_pidpath takes a pid alone: the token is checked before and after, so that the path is
	// the token's process's (a pid reused meanwhile has another version).
	if err := alive(tok); err != nil {
		return nil, err
	}
	buf := make([]byte, abi.PROC_PIDPATHINFO_MAXSIZE)
	n := darwin.ProcPidpath(int32(tok.PID()), unsafe.Pointer(&buf[0]), uint32(len(buf)))
	if n <= 0 {
		return nil, fmt.Errorf("proc_pidpath(%d) failed", tok.PID())
	}
	if err := alive(tok); err != nil {
		return nil, err
	}
	p := &process{exe: string(buf[:n])}
	if code {
		c, err := guestCode(tok)
		if err != nil {
			return nil, err
		}
		p.code = c
	}
	return p, nil
}

// secCode is a SecCodeRef, the peer's code as Security sees it.
type secCode uintptr

// guestCode returns the code of the process the token names: SecCodeCopyGuestWithAttributes with
// {kSecGuestAttributeAudit: the token as CFData}, which Security resolves by the whole token.
func guestCode(tok mach.AuditToken) (secCode, error) {
	if darwin.SecCodeCopyGuestWithAttributes == nil || darwin.CFDictionaryCreate == nil || darwin.CFDataCreate == nil ||
		darwin.SecGuestAttributeAuditAddr == 0 || darwin.CFTypeDictionaryKeyCallBacksAddr == 0 ||
		darwin.CFTypeDictionaryValueCallBacksAddr == 0 {
		return 0, fmt.Errorf("SecCodeCopyGuestWithAttributes: %w", errNoBinding)
	}
	t := [8]uint32(tok)
	data := darwin.CFDataCreate(0, unsafe.Pointer(&t[0]), int64(unsafe.Sizeof(t)))
	runtime.KeepAlive(&t)
	if data == 0 {
		return 0, errors.New("CFDataCreate failed")
	}
	defer darwin.CFRelease(data)
	keys := [1]uintptr{darwin.ReadUintptr(darwin.SecGuestAttributeAuditAddr)}
	values := [1]uintptr{data}
	attrs := darwin.CFDictionaryCreate(0, unsafe.Pointer(&keys[0]), unsafe.Pointer(&values[0]), 1,
		darwin.CFTypeDictionaryKeyCallBacksAddr, darwin.CFTypeDictionaryValueCallBacksAddr)
	if attrs == 0 {
		return 0, errors.New("CFDictionaryCreate failed")
	}
	defer darwin.CFRelease(attrs)
	var guest uintptr
	if st := darwin.SecCodeCopyGuestWithAttributes(0, attrs, 0, &guest); st != 0 || guest == 0 {
		if st == errSecCSNoSuchCode {
			return 0, fmt.Errorf("SecCodeCopyGuestWithAttributes: no such code (%d)", st)
		}
		return 0, fmt.Errorf("SecCodeCopyGuestWithAttributes failed (OSStatus %d)", st)
	}
	return secCode(guest), nil
}

func (c secCode) check(req *codeRequirement) error {
	if darwin.SecCodeCheckValidity == nil {
		return fmt.Errorf("%w: SecCodeCheckValidity: %w", ErrCodeSigningFailed, errNoBinding)
	}
	st := darwin.SecCodeCheckValidity(uintptr(c), 0, req.ref)
	runtime.KeepAlive(req)
	switch st {
	case 0:
		return nil
	case errSecCSReqFailed:
		return ErrCodeSigningFailed
	}
	return fmt.Errorf("%w: SecCodeCheckValidity: OSStatus %d", ErrCodeSigningFailed, st)
}

func (c secCode) close() { darwin.CFRelease(uintptr(c)) }

// codeRequirement is a parsed code-signing requirement: a SecRequirementRef, released when the
// Requirement holding it is collected. Where there is no code signing it is never made.
type codeRequirement struct {
	ref uintptr
	// text is the requirement as given. It also keeps the struct out of Go's tiny allocator:
	// a pointer-free object under 16 bytes may share a block with others, and its cleanup waits
	// until every one of them is unreachable (runtime.AddCleanup), which leaked the
	// SecRequirement for as long as a neighbour lived.
	text string
}

func (s darwinSystem) parseCode(text string) (*codeRequirement, error) {
	if err := s.loadSecurity(); err != nil {
		return nil, err
	}
	if darwin.SecRequirementCreateWithString == nil || darwin.CFStringCreateWithCString == nil {
		return nil, fmt.Errorf("peer: SecRequirementCreateWithString: %w", errNoBinding)
	}
	for i := 0; i < len(text); i++ {
		if text[i] == 0 {
			return nil, fmt.Errorf("%w: code-signing requirement holds a NUL", ErrInvalidRequirement)
		}
	}
	str := darwin.CFStringCreateWithCString(0, text, darwin.CFStringEncodingUTF8)
	if str == 0 {
		return nil, fmt.Errorf("%w: code-signing requirement is not UTF-8", ErrInvalidRequirement)
	}
	defer darwin.CFRelease(str)
	var ref uintptr
	if st := darwin.SecRequirementCreateWithString(str, 0, &ref); st != 0 || ref == 0 {
		return nil, fmt.Errorf("%w: %q does not parse (OSStatus %d)", ErrInvalidRequirement, text, st)
	}
	req := &codeRequirement{ref: ref, text: text}
	runtime.AddCleanup(req, func(ref uintptr) { darwin.CFRelease(ref) }, ref)
	return req, nil
}

// refused explains task_name_for_pid's KERN_FAILURE, which xnu answers alike for no such pid, a
// zombie (p_stat == SZOMB), and a caller that is neither root nor of the process's effective and
// real user, or that a MAC policy refuses (bsd/vm/vm_unix.c task_name_for_pid):
//   - kill(pid, 0) failing with ESRCH: no process has the pid;
//   - otherwise a process has it, live or a zombie (xnu's kill finds zombies too: kern_sig.c,
//     kill, via pzfind), and proc_pidpath tells them apart: proc_pidinfo(PROC_PIDPATHINFO) looks
//     the pid up with proc_find, which skips zombies (ESRCH), and needs no same user
//     (NO_CHECK_SAME_USER; bsd/kern/proc_info.c, proc_pidinfo). A path: the process lives and
//     task_name_for_pid refused it, fs.ErrPermission. No path: it is a zombie (or exited
//     meanwhile), ErrProcessGone.
//
// The limit: proc_pidinfo may also be refused by a MAC policy (proc_security_policy), with EPERM,
// which this cannot read (errno is not bound: no SDK fact for __error), so a live process that a
// MAC policy hides from proc_pidinfo but lets the caller signal counts as gone; one the caller
// may not signal stops at kill's EPERM: fs.ErrPermission (a zombie of another user included, as
// xnu's cansignal refuses it). The SZOMB state itself (proc_pidinfo PROC_PIDTBSDINFO's pbi_status, sysctl
// KERN_PROC_PID's p_stat) is not read: neither layout nor constant is in the SDK facts.
func (s darwinSystem) refused(pid int, cause error) error {
	if s.signal0 == nil {
		return fmt.Errorf("peer: pid %d: no such process, or not permitted: %w", pid, cause)
	}
	if err := s.signal0(pid); errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%w: pid %d: %w (%w)", ErrProcessGone, pid, fs.ErrNotExist, cause)
	} else if err == nil && darwin.ProcPidpath != nil {
		buf := make([]byte, abi.PROC_PIDPATHINFO_MAXSIZE)
		if darwin.ProcPidpath(int32(pid), unsafe.Pointer(&buf[0]), uint32(len(buf))) <= 0 {
			return fmt.Errorf("%w: pid %d is a zombie, or exited meanwhile (proc_pidpath finds no live process): %w (%w)",
				ErrProcessGone, pid, fs.ErrNotExist, cause)
		}
	}
	return fmt.Errorf("peer: pid %d: %w: only root, the process itself and its own user (effective and real) may read its task (%w)",
		pid, fs.ErrPermission, cause)
}

// close has nothing to release: the pid version is in the token.
func (darwinSystem) close() {}

// tokenForPID reads the audit token of the live process pid, pid version included, from its task:
// task_name_for_pid gives a send right to the task's name port, task_info(TASK_AUDIT_TOKEN) reads
// the token the kernel keeps for the task, and the name is deallocated on every path.
//
// The pid version is what makes the token honest. The token is read once, from the task the pid
// named when task_name_for_pid ran: the name port holds that task, not the pid, so a pid reused
// between the two calls cannot lend its new process's token (task_info fails on the exited task
// with KERN_INVALID_ARGUMENT: osfmk/kern/task.c task_info, "!task->active"). A pid reused after
// the token was read has another pid version, so every look-up by the token (csops_audittoken,
// SecCodeCopyGuestWithAttributes) fails as ErrProcessGone rather than judge the new process, and
// the uid, gid and pid predicates judge the token, the process that was. What it cannot do:
// tell which process the caller meant. A pid reused before task_name_for_pid names the new
// process, and that is the one judged.
func (s darwinSystem) tokenForPID(pid int) (mach.AuditToken, error) {
	if pid <= 0 || pid > math.MaxInt32 {
		// No process has such a pid (pid_t is 32 bits; xnu's PID_MAX is 99999): refused before
		// int32(pid) would name another process, as the Linux implementation finds no /proc entry.
		return mach.AuditToken{}, fmt.Errorf("%w: pid %d: %w", ErrProcessGone, pid, fs.ErrNotExist)
	}
	if err := s.load(); err != nil {
		return mach.AuditToken{}, err
	}
	if darwin.TaskNameForPID == nil || darwin.TaskInfo == nil || darwin.MachPortDeallocate == nil {
		return mach.AuditToken{}, fmt.Errorf("peer: task_name_for_pid, task_info: %w", errNoBinding)
	}
	self := darwin.TaskSelf()
	var name uint32
	if kr := darwin.TaskNameForPID(self, int32(pid), &name); kr != abi.KERN_SUCCESS {
		return mach.AuditToken{}, s.refused(pid, fmt.Errorf("task_name_for_pid: %s", mach.KernReturn(kr)))
	}
	switch name {
	case 0:
		// Success without a port: the process has no task (it is being created or torn down).
		return mach.AuditToken{}, fmt.Errorf("%w: pid %d has no task: %w", ErrProcessGone, pid, fs.ErrNotExist)
	case abi.MACH_PORT_DEAD:
		// The task's name port died between the look-up and the copy-out (the task is being torn
		// down): ipc_object_copyout of a dead port gives MACH_PORT_DEAD and no right to release.
		return mach.AuditToken{}, fmt.Errorf("%w: pid %d: its task is gone (MACH_PORT_DEAD): %w", ErrProcessGone, pid, fs.ErrNotExist)
	}
	defer darwin.MachPortDeallocate(self, name)
	var tok [darwin.TaskAuditTokenCount]uint32
	count := uint32(darwin.TaskAuditTokenCount)
	kr := darwin.TaskInfo(name, darwin.TaskAuditToken, (*int32)(unsafe.Pointer(&tok[0])), &count)
	switch {
	case kr == abi.KERN_INVALID_ARGUMENT:
		return mach.AuditToken{}, fmt.Errorf("%w: pid %d exited while its token was read (task_info: %s): %w",
			ErrProcessGone, pid, mach.KernReturn(kr), fs.ErrNotExist)
	case kr != abi.KERN_SUCCESS:
		return mach.AuditToken{}, fmt.Errorf("peer: pid %d: task_info(TASK_AUDIT_TOKEN): %s", pid, mach.KernReturn(kr))
	case count != darwin.TaskAuditTokenCount:
		return mach.AuditToken{}, fmt.Errorf("peer: pid %d: task_info(TASK_AUDIT_TOKEN) gave %d words, want %d", pid, count, darwin.TaskAuditTokenCount)
	}
	t := mach.AuditToken(tok)
	if t.PID() != pid {
		return mach.AuditToken{}, fmt.Errorf("peer: pid %d: task_info gave the token of pid %d", pid, t.PID())
	}
	return t, nil
}
