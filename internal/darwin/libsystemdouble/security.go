//go:build linux

package libsystemdouble

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
)

// Peer identity and code signing, as package peer asks them on macOS: csops_audittoken and
// proc_pidpath (libsystem_kernel), CFDataCreate and CFDictionaryCreate with the CFType callbacks
// (CoreFoundation), and SecRequirementCreateWithString, SecCodeCopyGuestWithAttributes with
// kSecGuestAttributeAudit and SecCodeCheckValidity (Security). Every object is one of the
// reference-counted CF objects of sandbox.go, so CFObjects counts them; every call can be failed
// with Fault{Call: its C name}.
//
// Processes. Linux has no pid version: a process the test did not describe (SetProcess) has
// version 0, lives while /proc/PID exists, runs /proc/PID/exe and is unsigned. A described one has
// the version, path and signature the test gives it, and can be made to exit (Gone).

// OSStatus codes of Security's CSCommon.h that the double returns.
const (
	ErrSecCSReqFailed                 = -67050 // errSecCSReqFailed: the code does not satisfy the requirement
	ErrSecCSReqInvalid                = -67052 // errSecCSReqInvalid: the requirement text does not parse
	ErrSecCSUnsigned                  = -67062 // errSecCSUnsigned: the code has no signature
	ErrSecCSGuestInvalid              = -67063 // errSecCSGuestInvalid: the guest is gone
	ErrSecCSNoSuchCode                = -67065 // errSecCSNoSuchCode: no guest matches the attributes
	ErrSecCSUnsupportedGuestAttribute = -67067 // errSecCSUnsupportedGuestAttributes
)

// CF type ids of the objects this file makes (CFData's and CFDictionary's are CF's own).
const (
	cfDataTypeID        = 20
	cfDictionaryTypeID  = 18
	secCodeTypeID       = 71
	secRequirementType  = 72
	guestAttributeAudit = "audit" // the value of kSecGuestAttributeAudit (SecCode.h)
)

// Signature is a process's code signature, as SecCodeCheckValidity judges it against a
// requirement (requirement.go says how each part of the language reads it).
type Signature struct {
	Identifier string // the signing identifier (`identifier "…"`)
	CDHash     []byte // the code directory hash (`cdhash H"…"`)
	// Anchor is what the chain is anchored in (`anchor apple`, `anchor apple generic`).
	Anchor Anchor
	// Certificates is the chain, leaf first and anchor last (`certificate leaf[subject.OU]`).
	Certificates []Certificate
	// Info is the Info.plist's string values (`info[CFBundleVersion] >= "2"`).
	Info map[string]string
	// Entitlements is the signed entitlements, as strings ("true" for a boolean one)
	// (`entitlement["com.apple.security.app-sandbox"] exists`).
	Entitlements map[string]string
	// Platform is the platform identifier (`platform = 1`); 0 for third-party code.
	Platform int
}

// DeveloperID returns the signature a Developer ID-signed program of team has: anchored in
// Apple's root through Apple's Developer ID CA, with the leaf's subject OU the team id and the
// Developer ID extensions Apple's designated requirements test (1.2.840.113635.100.6.1.13 on the
// leaf, 1.2.840.113635.100.6.2.6 on the intermediate).
func DeveloperID(identifier, team string, cdhash []byte) *Signature {
	return &Signature{
		Identifier: identifier,
		CDHash:     cdhash,
		Anchor:     AnchorAppleGeneric,
		Certificates: []Certificate{
			{Subject: map[string]string{"CN": "Developer ID Application: Example (" + team + ")", "OU": team},
				Fields: map[string]string{"1.2.840.113635.100.6.1.13": ""}},
			{Subject: map[string]string{"CN": "Developer ID Certification Authority", "OU": "Apple Certification Authority"},
				Fields: map[string]string{"1.2.840.113635.100.6.2.6": ""}},
			{Subject: map[string]string{"CN": "Apple Root CA", "OU": "Apple Certification Authority"}},
		},
	}
}

// Process describes the process at a pid for the calls of this file.
type Process struct {
	Version   uint32     // its pid version, which its audit tokens carry
	Path      string     // what proc_pidpath answers; "" reads /proc/PID/exe
	Signature *Signature // nil: unsigned
	Gone      bool       // it exited: every call by its pid or token fails
	// Denied makes task_name_for_pid refuse the process, as xnu does for another user's
	// process or when a MAC policy says no (task.go).
	Denied bool
	// TaskDead makes task_name_for_pid succeed with MACH_PORT_DEAD, as xnu does when the task's
	// name port dies before the copy-out (the task is being torn down).
	TaskDead bool
}

var procs struct {
	sync.Mutex
	m map[int32]Process
}

// SetProcess describes the process at pid until the returned function restores what was there
// before (nil: /proc decides again). Change a description while a look-up runs (After) to model
// a pid reused in between.
func SetProcess(pid int, p *Process) (restore func()) {
	procs.Lock()
	defer procs.Unlock()
	if procs.m == nil {
		procs.m = map[int32]Process{}
	}
	old, had := procs.m[int32(pid)]
	set := func(p *Process, ok bool) {
		if ok {
			procs.m[int32(pid)] = *p
		} else {
			delete(procs.m, int32(pid))
		}
	}
	set(p, p != nil)
	return func() {
		procs.Lock()
		defer procs.Unlock()
		set(&old, had)
	}
}

// process returns the process at pid, and false when there is none.
func process(pid int32) (Process, bool) {
	procs.Lock()
	p, ok := procs.m[pid]
	procs.Unlock()
	if ok {
		return p, !p.Gone
	}
	if pid <= 0 {
		return Process{}, false
	}
	return Process{}, liveOnLinux(pid)
}

// liveOnLinux reports whether pid is a live process: it has /proc/PID and is no zombie (state Z,
// or X while it is reaped). xnu's look-ups by pid skip zombies alike: proc_find, behind
// proc_pidinfo and csops, finds no zombie, and task_name_for_pid refuses p_stat == SZOMB
// (bsd/vm/vm_unix.c).
func liveOnLinux(pid int32) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return false
	}
	// "pid (comm) state ...": comm may hold spaces and parentheses, the last ')' ends it.
	rest := string(b[bytes.LastIndexByte(b, ')')+1:])
	f := strings.Fields(rest)
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// byToken returns the process a token names: its pid must live with the token's pid version.
func byToken(tok [8]uint32) (Process, bool) {
	p, ok := process(int32(tok[5]))
	if !ok || p.Version != tok[7] {
		return Process{}, false
	}
	return p, true
}

// The data symbols: kSecGuestAttributeAudit (a CFStringRef, made once and never released, as a
// constant CFString is) and the CFType callback structs, which the double compares by address.
var (
	guestAuditKey  = new(uintptr)
	keyCallBacks   = new([6]uintptr)
	valueCallBacks = new([5]uintptr)
)

// installSecurity binds this file's calls and publishes its data symbols (Install runs it once).
func installSecurity() {
	*guestAuditKey = newCF(&cfObject{typeID: cfStringTypeID, str: guestAttributeAudit})
	darwin.SecGuestAttributeAuditAddr = uintptr(unsafe.Pointer(guestAuditKey))
	darwin.CFTypeDictionaryKeyCallBacksAddr = uintptr(unsafe.Pointer(keyCallBacks))
	darwin.CFTypeDictionaryValueCallBacksAddr = uintptr(unsafe.Pointer(valueCallBacks))
	darwin.CsopsAudittoken = csopsAudittoken
	darwin.ProcPidpath = procPidpath
	darwin.CFDataCreate = cfDataCreate
	darwin.CFDictionaryCreate = cfDictionaryCreate
	darwin.SecRequirementCreateWithString = secRequirementCreateWithString
	darwin.SecCodeCopyGuestWithAttributes = secCodeCopyGuestWithAttributes
	darwin.SecCodeCheckValidity = secCodeCheckValidity
}

// csopsAudittoken is csops_audittoken(pid, CS_OPS_STATUS, &status, 4, &token) as xnu's
// csops_internal answers it (bsd/kern/kern_proc.c): a token whose pid is not pid fails (EINVAL),
// as does one whose pid is gone or whose pid version is not the process's (ESRCH). The double
// returns -1 for both and sets no errno. The status is CS_VALID|CS_SIGNED for a signed process.
func csopsAudittoken(pid int32, ops uint32, addr unsafe.Pointer, size uint64, token *[8]uint32) int32 {
	const call = "csops_audittoken"
	if r := take(call, 0); r != 0 {
		return leave(call, 0, r)
	}
	if token == nil || int32(token[5]) != pid || ops != abi.CS_OPS_STATUS || addr == nil || size < 4 {
		return leave(call, 0, -1)
	}
	p, ok := byToken(*token)
	if !ok {
		return leave(call, 0, -1)
	}
	const csValid, csSigned = 0x1, 0x20000000 // <kern/cs_blobs.h>
	var status uint32
	if p.Signature != nil {
		status = csValid | csSigned
	}
	*(*uint32)(addr) = status
	return leave(call, 0, 0)
}

// procPidpath is proc_pidpath(pid, buf, size): the length of the path written, or 0 on failure
// (libproc's proc_pidpath returns 0 when __proc_info fails).
func procPidpath(pid int32, buf unsafe.Pointer, size uint32) int32 {
	const call = "proc_pidpath"
	if take(call, 0) != 0 { // any fault fails it the one way it fails: 0
		return leave(call, 0, 0)
	}
	p, ok := process(pid)
	if !ok || buf == nil {
		return leave(call, 0, 0)
	}
	path := p.Path
	if path == "" {
		var err error
		if path, err = os.Readlink("/proc/" + strconv.Itoa(int(pid)) + "/exe"); err != nil {
			return leave(call, 0, 0)
		}
	}
	if uint32(len(path)) >= size {
		return leave(call, 0, 0)
	}
	out := unsafe.Slice((*byte)(buf), size)
	copy(out, path)
	out[len(path)] = 0
	return leave(call, 0, int32(len(path)))
}

// cfDataCreate is CFDataCreate: a copy of the bytes.
func cfDataCreate(_ uintptr, b unsafe.Pointer, n int64) uintptr {
	const call = "CFDataCreate"
	if take(call, 0) != 0 || n < 0 || (b == nil && n > 0) {
		leave(call, 0, 0)
		return 0
	}
	var data []byte
	if n > 0 {
		data = bytes.Clone(unsafe.Slice((*byte)(b), n))
	}
	h := newCF(&cfObject{typeID: cfDataTypeID, more: data})
	leave(call, 0, 0)
	return h
}

// cfDictionaryCreate is CFDictionaryCreate with the CFType callbacks, which retain every key
// and value (released with the dictionary). Other callbacks are not modelled: a call with them
// panics, since the double could not tell what they retain.
func cfDictionaryCreate(_ uintptr, keys, values unsafe.Pointer, n int64, kcb, vcb uintptr) uintptr {
	const call = "CFDictionaryCreate"
	if kcb != darwin.CFTypeDictionaryKeyCallBacksAddr || vcb != darwin.CFTypeDictionaryValueCallBacksAddr {
		panic("libsystemdouble: CFDictionaryCreate without kCFTypeDictionaryKeyCallBacks and kCFTypeDictionaryValueCallBacks")
	}
	if take(call, 0) != 0 || n < 0 {
		leave(call, 0, 0)
		return 0
	}
	var owns []uintptr
	if n > 0 {
		ks, vs := unsafe.Slice((*uintptr)(keys), n), unsafe.Slice((*uintptr)(values), n)
		for i := range ks {
			owns = append(owns, cfRetain(ks[i]), cfRetain(vs[i]))
		}
	}
	h := newCF(&cfObject{typeID: cfDictionaryTypeID, owns: owns})
	leave(call, 0, 0)
	return h
}

// cfRetain is CFRetain.
func cfRetain(h uintptr) uintptr {
	o := cfGet(h)
	cf.Lock()
	o.refs++
	cf.Unlock()
	return h
}

// dictionaryGet returns the value of the dictionary whose key is the CFString key, or 0.
func dictionaryGet(dict uintptr, key string) uintptr {
	d := cfGet(dict)
	if d.typeID != cfDictionaryTypeID {
		panic("libsystemdouble: a CFDictionary call on another CF type")
	}
	for i := 0; i+1 < len(d.owns); i += 2 {
		if k := cfGet(d.owns[i]); k.typeID == cfStringTypeID && k.str == key {
			return d.owns[i+1]
		}
	}
	return 0
}

// secGuest is what a SecCode of the double names: a process by its token.
type secGuest struct{ token [8]uint32 }

// secCodeCopyGuestWithAttributes is SecCodeCopyGuestWithAttributes(NULL, attrs, flags, &guest):
// with kSecGuestAttributeAudit a CFData holding a 32-byte audit token, the code of the process
// the whole token names (errSecCSNoSuchCode when it is gone or its pid version differs). The
// caller releases the guest.
func secCodeCopyGuestWithAttributes(host, attrs uintptr, _ uint32, guest *uintptr) int32 {
	const call = "SecCodeCopyGuestWithAttributes"
	if r := take(call, 0); r != 0 {
		return leave(call, 0, r)
	}
	if host != 0 || attrs == 0 || guest == nil {
		return leave(call, 0, ErrSecCSUnsupportedGuestAttribute)
	}
	v := dictionaryGet(attrs, guestAttributeAudit)
	if v == 0 {
		return leave(call, 0, ErrSecCSUnsupportedGuestAttribute)
	}
	d := cfGet(v)
	data, _ := d.more.([]byte)
	if d.typeID != cfDataTypeID || len(data) != 32 {
		return leave(call, 0, ErrSecCSUnsupportedGuestAttribute)
	}
	var tok [8]uint32
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&tok[0])), 32), data)
	if _, ok := byToken(tok); !ok {
		return leave(call, 0, ErrSecCSNoSuchCode)
	}
	*guest = newCF(&cfObject{typeID: secCodeTypeID, more: secGuest{tok}})
	return leave(call, 0, 0)
}

// secRequirementCreateWithString is SecRequirementCreateWithString(text, flags, &req) over
// Apple's requirement language (requirement.go): a text that does not parse fails with
// errSecCSReqInvalid, as a syntax error does in Security.
func secRequirementCreateWithString(text uintptr, _ uint32, req *uintptr) int32 {
	const call = "SecRequirementCreateWithString"
	if r := take(call, 0); r != 0 {
		return leave(call, 0, r)
	}
	n, err := parseRequirementText(cfString(text).str)
	if err != nil || req == nil {
		return leave(call, 0, ErrSecCSReqInvalid)
	}
	*req = newCF(&cfObject{typeID: secRequirementType, more: n})
	return leave(call, 0, 0)
}

// secCodeCheckValidity is SecCodeCheckValidity(code, flags, req): errSecCSGuestInvalid when the
// process is gone, errSecCSUnsigned when it has no signature, errSecCSReqFailed when it does not
// satisfy req, 0 otherwise.
func secCodeCheckValidity(code uintptr, _ uint32, req uintptr) int32 {
	const call = "SecCodeCheckValidity"
	g := cfGet(code)
	if g.typeID != secCodeTypeID {
		panic("libsystemdouble: SecCodeCheckValidity on something that is not a SecCode")
	}
	var rq *reqNode
	if req != 0 {
		r := cfGet(req)
		if r.typeID != secRequirementType {
			panic("libsystemdouble: SecCodeCheckValidity with something that is not a SecRequirement")
		}
		rq = r.more.(*reqNode)
	}
	if r := take(call, 0); r != 0 {
		return leave(call, 0, r)
	}
	p, ok := byToken(g.more.(secGuest).token)
	switch {
	case !ok:
		return leave(call, 0, ErrSecCSGuestInvalid)
	case p.Signature == nil:
		return leave(call, 0, ErrSecCSUnsigned)
	}
	if rq != nil && !rq.satisfies(p.Signature) {
		return leave(call, 0, ErrSecCSReqFailed)
	}
	return leave(call, 0, 0)
}
