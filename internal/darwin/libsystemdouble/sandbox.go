//go:build linux

package libsystemdouble

import (
	"encoding/binary"
	"html"
	"os"
	"strings"
	"sync"
	"unicode/utf16"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
)

// The sandbox, code signing and entitlements of the process, as the double's sandbox_check, csops
// and SecTask calls report them. The process's code signature is the emulated sandbox's
// declaration: the application groups listed in MACHPORT_APP_GROUPS (sandboxcheck.EnvAppGroups,
// comma-separated and not checked, as a signature's entitlements are not), read at every call,
// unless a test set Entitlements. A process with groups is sandboxed, and its sandbox allows
// mach-register and mach-lookup of the names inside its groups only, as the emulated sandbox does.

// envAppGroups is sandboxcheck.EnvAppGroups (which this package cannot import: sandboxcheck
// imports it).
const envAppGroups = "MACHPORT_APP_GROUPS"

// entitlementAppGroups is the entitlement that lists the application groups.
const entitlementAppGroups = "com.apple.security.application-groups"

// SandboxCheckNoReport is the value of the double's SANDBOX_CHECK_NO_REPORT data symbol. The real
// value lives only in libsandbox's symbol; the Darwin logic reads whatever the symbol holds.
const SandboxCheckNoReport = 0x40000000

var noReport = new(uint32)

// Entitlements replaces what the process's code signature says (SetEntitlements).
type Entitlements struct {
	// Groups are the application groups the signature lists, unchecked; none means the process
	// is not sandboxed.
	Groups []string
	// Blob, when not nil, is what csops(CS_OPS_ENTITLEMENTS_BLOB) returns instead of the blob
	// made from Groups: a malformed one, say.
	Blob []byte
	// LoneString makes SecTaskCopyValueForEntitlement give the first group as a CFString instead
	// of a CFArray of them.
	LoneString bool
}

var sandbox struct {
	sync.Mutex
	ent      *Entitlements
	reported int // denials the process probed without SANDBOX_CHECK_NO_REPORT
}

// SetEntitlements makes e the process's code signature until the returned function restores the
// previous one (nil: MACHPORT_APP_GROUPS decides again).
func SetEntitlements(e *Entitlements) (restore func()) {
	sandbox.Lock()
	old := sandbox.ent
	sandbox.ent = e
	sandbox.Unlock()
	return func() {
		sandbox.Lock()
		sandbox.ent = old
		sandbox.Unlock()
	}
}

// Reported returns how many denials this process's own sandbox_check probes made without
// SANDBOX_CHECK_NO_REPORT, each of which the real sandbox logs as a violation.
func Reported() int {
	sandbox.Lock()
	defer sandbox.Unlock()
	return sandbox.reported
}

// entitlements returns the process's code signature now.
func entitlements() Entitlements {
	sandbox.Lock()
	e := sandbox.ent
	sandbox.Unlock()
	if e != nil {
		return *e
	}
	var groups []string
	for _, g := range strings.Split(os.Getenv(envAppGroups), ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}
	return Entitlements{Groups: groups}
}

const (
	opRegister = "mach-register"
	opLookUp   = "mach-lookup"
)

// sandboxAllows is the process's sandbox's verdict on op (mach-register or mach-lookup) for a
// global or per-PID service name: an unsandboxed process may do anything; a sandboxed one only use
// names that are one of its groups, a '.', and at least one more byte
// (sandboxcheck.HasGroupPrefix: the test the App Sandbox applies). As in the emulated sandbox,
// one rule governs both operations and both scopes.
func sandboxAllows(_ string, _ bool, name string) bool {
	groups := entitlements().Groups
	if len(groups) == 0 {
		return true
	}
	for _, g := range groups {
		if len(name) > len(g)+1 && name[len(g)] == '.' && name[:len(g)] == g {
			return true
		}
	}
	return false
}

func installSandbox() {
	*noReport = SandboxCheckNoReport
	darwin.SandboxCheckNoReportAddr = uintptr(unsafe.Pointer(noReport))
	// sandbox_check is variadic: the arm64 binding pads x3..x7 and passes the argument in the
	// first stack slot, the amd64 one passes it fourth. The double reads the argument only where
	// each ABI puts it, so a call that put it elsewhere would read NULL.
	darwin.SandboxCheckArm64 = func(pid int32, operation unsafe.Pointer, filter uint32, _, _, _, _, _ uintptr, arg unsafe.Pointer) int32 {
		return sandboxCheck(pid, operation, filter, arg)
	}
	darwin.SandboxCheckAmd64 = sandboxCheck
	darwin.Csops = csops
	installCF()
}

// sandboxCheck is sandbox_check(pid, operation, filter, arg): 0 allowed, 1 denied, -1 failed.
// With a NULL operation and SANDBOX_FILTER_NONE it answers whether the process is sandboxed. The
// double knows only this process: another pid fails (ESRCH), as does an operation or filter it
// does not model.
func sandboxCheck(pid int32, operation unsafe.Pointer, filter uint32, arg unsafe.Pointer) int32 {
	const call = "sandbox_check"
	if r := take(call, 0); r != 0 {
		return r
	}
	if int(pid) != os.Getpid() {
		return leave(call, 0, -1)
	}
	quiet := filter&SandboxCheckNoReport != 0
	filter &^= SandboxCheckNoReport
	sandboxed := len(entitlements().Groups) > 0
	if operation == nil {
		if filter != abi.SANDBOX_FILTER_NONE {
			return leave(call, 0, -1)
		}
		if sandboxed {
			return leave(call, 0, 1)
		}
		return leave(call, 0, 0)
	}
	op := goString(operation)
	if (op != opRegister && op != opLookUp) ||
		(filter != abi.SANDBOX_FILTER_GLOBAL_NAME && filter != abi.SANDBOX_FILTER_LOCAL_NAME) || arg == nil {
		return leave(call, 0, -1)
	}
	if sandboxAllows(op, filter == abi.SANDBOX_FILTER_LOCAL_NAME, goString(arg)) {
		return leave(call, 0, 0)
	}
	if !quiet {
		sandbox.Lock()
		sandbox.reported++
		sandbox.Unlock()
	}
	return leave(call, 0, 1)
}

// goString reads a NUL-terminated C string.
//
//go:nocheckptr
func goString(p unsafe.Pointer) string {
	var b []byte
	for ; *(*byte)(p) != 0; p = unsafe.Add(p, 1) {
		b = append(b, *(*byte)(p))
	}
	return string(b)
}

// csMagicEmbeddedEntitlements starts an entitlements blob (xnu's CSMAGIC_EMBEDDED_ENTITLEMENTS).
const csMagicEmbeddedEntitlements = 0xfade7171

// entitlementsBlob is the signature's entitlements blob: the magic, the big-endian total length,
// then an XML property list.
func entitlementsBlob(e Entitlements) []byte {
	if e.Blob != nil {
		return e.Blob
	}
	var x strings.Builder
	x.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" +
		`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n" +
		`<plist version="1.0">` + "\n<dict>\n\t<key>com.apple.security.app-sandbox</key>\n\t<true/>\n")
	if len(e.Groups) > 0 {
		x.WriteString("\t<key>" + entitlementAppGroups + "</key>\n\t<array>\n")
		for _, g := range e.Groups {
			x.WriteString("\t\t<string>" + html.EscapeString(g) + "</string>\n")
		}
		x.WriteString("\t</array>\n")
	}
	x.WriteString("</dict>\n</plist>\n")
	blob := binary.BigEndian.AppendUint32(nil, csMagicEmbeddedEntitlements)
	blob = binary.BigEndian.AppendUint32(blob, uint32(8+x.Len()))
	return append(blob, x.String()...)
}

// csops is csops(pid, ops, addr, size) for CS_OPS_ENTITLEMENTS_BLOB, as xnu's csops_internal
// answers it: a buffer too small for the blob receives a fake header, zero but for the
// big-endian length, and the call fails (ERANGE); a large enough one receives the blob.
func csops(pid int32, ops uint32, addr unsafe.Pointer, size uint64) int32 {
	const call = "csops"
	if r := take(call, 0); r != 0 {
		return r
	}
	if int(pid) != os.Getpid() || ops != abi.CS_OPS_ENTITLEMENTS_BLOB || addr == nil {
		return leave(call, 0, -1)
	}
	blob := entitlementsBlob(entitlements())
	out := unsafe.Slice((*byte)(addr), size)
	if size < uint64(len(blob)) {
		if size >= 8 {
			clear(out[:8])
			binary.BigEndian.PutUint32(out[4:], uint32(len(blob)))
		}
		return leave(call, 0, -1)
	}
	copy(out, blob)
	return leave(call, 0, 0)
}

// CoreFoundation and Security objects: handles into a table, reference-counted as CF counts
// them. A handle the table does not hold (released, or never made) panics, where CF would
// crash.

// CF type ids the double gives its objects (CFString's and CFArray's are CF's own, 7 and 19).
const (
	cfStringTypeID = 7
	cfArrayTypeID  = 19
	cfErrorTypeID  = 36
	secTaskTypeID  = 70
)

type cfObject struct {
	typeID uint64
	str    string
	refs   int
	// owns are the objects this one retained (a dictionary's keys and values, security.go):
	// released when it is freed, as CF's collections release their members.
	owns []uintptr
	// more is what a type of security.go keeps (the bytes of a CFData, the pid of a SecCode).
	more any
	// free, when set, runs when the last reference goes (a CFMessagePort's invalidation:
	// cfmessageport.go).
	free func()
}

var cf struct {
	sync.Mutex
	objs map[uintptr]*cfObject
	next uintptr
}

func newCF(o *cfObject) uintptr {
	cf.Lock()
	defer cf.Unlock()
	if cf.objs == nil {
		cf.objs, cf.next = map[uintptr]*cfObject{}, 0x7f0000001000
	}
	cf.next += 0x40
	o.refs = 1
	cf.objs[cf.next] = o
	return cf.next
}

func cfGet(h uintptr) *cfObject {
	cf.Lock()
	defer cf.Unlock()
	o, ok := cf.objs[h]
	if !ok {
		panic("libsystemdouble: a CF call on an object that does not exist (released, or never made)")
	}
	return o
}

// CFObjects returns how many CF and Security objects the process holds: after a call of the
// Darwin logic it must be what it was before.
func CFObjects() int {
	cf.Lock()
	defer cf.Unlock()
	return len(cf.objs)
}

func installCF() {
	darwin.SecTaskCreateFromSelf = func(uintptr) uintptr {
		if take("SecTaskCreateFromSelf", 0) != 0 {
			return 0
		}
		return newCF(&cfObject{typeID: secTaskTypeID})
	}
	darwin.SecTaskCopyValueForEntitlement = secTaskCopyValueForEntitlement
	darwin.CFStringCreateWithCString = func(_ uintptr, cstr string, encoding uint32) uintptr {
		if take("CFStringCreateWithCString", 0) != 0 || encoding != darwin.CFStringEncodingUTF8 {
			return 0
		}
		if i := strings.IndexByte(cstr, 0); i >= 0 {
			cstr = cstr[:i]
		}
		return newCF(&cfObject{typeID: cfStringTypeID, str: cstr})
	}
	darwin.CFStringGetLength = func(s uintptr) int64 {
		return int64(len(utf16.Encode([]rune(cfString(s).str))))
	}
	darwin.CFStringGetCString = func(s uintptr, buf unsafe.Pointer, size int64, encoding uint32) bool {
		str := cfString(s).str
		if encoding != darwin.CFStringEncodingUTF8 || int64(len(str)) >= size {
			return false
		}
		out := unsafe.Slice((*byte)(buf), size)
		copy(out, str)
		out[len(str)] = 0
		return true
	}
	darwin.CFStringGetTypeID = func() uint64 { return cfStringTypeID }
	darwin.CFGetTypeID = func(h uintptr) uint64 { return cfGet(h).typeID }
	darwin.CFRelease = cfRelease
}

// cfRelease is CFRelease: the last reference frees the object, and releases what it owns.
func cfRelease(h uintptr) {
	o := cfGet(h)
	cf.Lock()
	o.refs--
	freed := o.refs == 0
	if freed {
		delete(cf.objs, h)
	}
	cf.Unlock()
	if freed {
		if o.free != nil {
			o.free()
		}
		for _, m := range o.owns {
			cfRelease(m)
		}
	}
}

func cfString(h uintptr) *cfObject {
	o := cfGet(h)
	if o.typeID != cfStringTypeID {
		panic("libsystemdouble: a CFString call on another CF type")
	}
	return o
}

// secTaskCopyValueForEntitlement is SecTaskCopyValueForEntitlement(task, key, &error): the
// entitlement's value (the caller releases it), or NULL when the signature lacks it. A fault
// fails it with a CFError in *error.
func secTaskCopyValueForEntitlement(task, key uintptr, cfErr *uintptr) uintptr {
	if cfGet(task).typeID != secTaskTypeID {
		panic("libsystemdouble: SecTaskCopyValueForEntitlement on something that is not a SecTask")
	}
	if take("SecTaskCopyValueForEntitlement", 0) != 0 {
		if cfErr != nil {
			*cfErr = newCF(&cfObject{typeID: cfErrorTypeID})
		}
		return 0
	}
	e := entitlements()
	if cfString(key).str != entitlementAppGroups || len(e.Groups) == 0 {
		return 0
	}
	if e.LoneString {
		return newCF(&cfObject{typeID: cfStringTypeID, str: e.Groups[0]})
	}
	return newCF(&cfObject{typeID: cfArrayTypeID})
}
