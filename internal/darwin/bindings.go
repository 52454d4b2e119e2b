// Package darwin binds the C functions and data symbols machport uses on macOS and iOS, with purego.
//
// This file is portable on purpose: the table of bindings and the Go function variables are
// declared on every platform, so that a test running on Linux can check each one against the
// macOS SDK facts (which dylib exports the symbol, and the width and signedness of every parameter
// and result). The loader (loader.go) resolves them, each image at its first use, through a
// Linker: purego's on macOS and iOS (load_darwin.go; GOOS=ios needs cgo for purego), opening each
// system's framework paths (loader.go); elsewhere there is none, so the loaders
// return an error wrapping errors.ErrUnsupported and the variables stay nil, unless a Linux test
// installs the libSystem double's (internal/darwin/libsystemdouble).
//
// The private bindings (bindings_private.go) are left out of public-API-only builds (mode.go).
//
// Status: builds for darwin/arm64 and darwin/amd64; checked against the macOS 13.3 SDK and the
// iOS 17.5 SDK facts; the iOS file set is type-checked, not compiled; not run on macOS or iOS.
package darwin

import "unsafe"

// Dylibs, as the SDK's .tbd stubs name the library that exports each symbol. The system dylibs
// are re-exported by libSystem, which is what Load opens; the frameworks are opened on their own
// (loader.go).
const (
	LibSystem = "/usr/lib/libSystem.B.dylib"
	LibKernel = "/usr/lib/system/libsystem_kernel.dylib"
	LibXPC    = "/usr/lib/system/libxpc.dylib"
	// LibSandbox exports the sandbox SPI; libSystem re-exports it too.
	LibSandbox = "/usr/lib/system/libsystem_sandbox.dylib"
	// LibSecurity and LibCoreFoundation are frameworks, not part of libSystem: LoadSecurity and
	// LoadCoreFoundation open them on their own, only when a binding from them is to be used.
	LibSecurity       = "/System/Library/Frameworks/Security.framework/Versions/A/Security"
	LibCoreFoundation = "/System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation"
	// IOSLibSecurity and IOSLibCoreFoundation are the same frameworks' binaries on iOS, whose
	// bundles are flat (ios-abi.json). The tables name the macOS paths; the loader opens these
	// on iOS (loader.go, imagePaths).
	IOSLibSecurity       = "/System/Library/Frameworks/Security.framework/Security"
	IOSLibCoreFoundation = "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
	// LibDispatch is libdispatch (dispatch queues), re-exported by libSystem.
	LibDispatch = "/usr/lib/system/libdispatch.dylib"
)

// CFStringEncodingUTF8 is kCFStringEncodingUTF8 (checked against the SDK by the tests).
const CFStringEncodingUTF8 = 0x08000100

// Func is one C function to bind.
type Func struct {
	Name     string // the C symbol, without the leading underscore
	Lib      string // the dylib that exports it (checked by the ABI test)
	Fn       any    // pointer to the Go func variable that purego fills
	Optional bool   // a missing symbol leaves Fn nil instead of failing its image's load
	// Unchecked, when set, says why the SDK facts cannot check the binding (the symbol is not in
	// them) and where its prototype comes from; the ABI test requires it to be absent from the
	// facts, so that it is checked once they have it.
	Unchecked string
}

// Data is one C data symbol whose address the loader records.
type Data struct {
	Name     string
	Lib      string
	Addr     *uintptr // receives the symbol's address
	Type     any      // a value of the Go type read at that address (checked by the ABI test)
	Optional bool
	// Unchecked: as Func.Unchecked.
	Unchecked string
}

// Mach functions of libsystem_kernel (<mach/mach_port.h>, <mach/message.h>, <mach/vm_map.h>).
var (
	MachMsg                     func(msg unsafe.Pointer, option int32, sendSize, rcvSize, rcvName, timeout, notify uint32) int32
	MachMsgDestroy              func(msg unsafe.Pointer)
	MachPortAllocate            func(task, right uint32, name *uint32) int32
	MachPortConstruct           func(task uint32, options unsafe.Pointer, context uint64, name *uint32) int32
	MachPortDestruct            func(task, name uint32, srdelta int32, guard uint64) int32
	MachPortDeallocate          func(task, name uint32) int32
	MachPortModRefs             func(task, name, right uint32, delta int32) int32
	MachPortInsertRight         func(task, name, poly, polyPoly uint32) int32
	MachPortExtractRight        func(task, name, msgtName uint32, poly, polyPoly *uint32) int32
	MachPortGetRefs             func(task, name, right uint32, refs *uint32) int32
	MachPortType                func(task, name uint32, ptype *uint32) int32
	MachPortRequestNotification func(task, name uint32, msgid int32, sync, notify, notifyPoly uint32, previous *uint32) int32
	MachPortSetAttributes       func(task, name uint32, flavor int32, info *int32, count uint32) int32
	MachPortGetAttributes       func(task, name uint32, flavor int32, info *int32, count *uint32) int32
	MachPortMoveMember          func(task, member, after uint32) int32
	MachPortInsertMember        func(task, name, pset uint32) int32
	MachPortExtractMember       func(task, name, pset uint32) int32
	MachPortNames               func(task uint32, names **uint32, namesCount *uint32, types **uint32, typesCount *uint32) int32
	VMAllocate                  func(task uint32, address *uint64, size uint64, flags int32) int32
	VMDeallocate                func(task uint32, address, size uint64) int32
	MachErrorString             func(code int32) string
)

// launchd's bootstrap name service (libxpc). bootstrap_register2 and bootstrap_look_up2 are
// exported but declared in no SDK header; their prototypes come from launchd's bootstrap_priv.h.
var (
	BootstrapRegister2 func(bp uint32, name string, port uint32, flags uint64) int32
	BootstrapLookUp    func(bp uint32, name string, port *uint32) int32
	BootstrapLookUp2   func(bp uint32, name string, port *uint32, pid int32, flags uint64) int32
	BootstrapCheckIn   func(bp uint32, name string, port *uint32) int32
	BootstrapStrerror  func(code int32) string
)

// The sandbox, code signing and entitlements. csops is exported by libsystem_kernel but declared
// in no SDK header (xnu's codesign.h). CF and SecTask objects are passed as uintptr: they are
// C pointers the Go garbage collector must not trace.
var (
	Csops                          func(pid int32, ops uint32, addr unsafe.Pointer, size uint64) int32
	SecTaskCreateFromSelf          func(allocator uintptr) uintptr
	SecTaskCopyValueForEntitlement func(task, entitlement uintptr, cfErr *uintptr) uintptr
	CFStringCreateWithCString      func(allocator uintptr, cstr string, encoding uint32) uintptr
	CFStringGetCString             func(str uintptr, buf unsafe.Pointer, size int64, encoding uint32) bool
	CFStringGetLength              func(str uintptr) int64
	CFStringGetTypeID              func() uint64
	CFGetTypeID                    func(cf uintptr) uint64
	CFRelease                      func(cf uintptr)
)

// CoreFoundation's own CFMessagePort, with the CFData and dispatch-queue calls it needs: the
// interop tests' CF peers (package internal/cfport). Objects are uintptr, as above. The two
// per-process variants are exported but declared only in CF's private CFPriv.h.
var (
	CFMessagePortCreateLocal            func(allocator, name, callout uintptr, context unsafe.Pointer, shouldFreeInfo *uint8) uintptr
	CFMessagePortCreatePerProcessLocal  func(allocator, name, callout uintptr, context unsafe.Pointer, shouldFreeInfo *uint8) uintptr
	CFMessagePortCreateRemote           func(allocator, name uintptr) uintptr
	CFMessagePortCreatePerProcessRemote func(allocator, name uintptr, pid int64) uintptr
	CFMessagePortSendRequest            func(remote uintptr, msgid int32, data uintptr, sendTimeout, rcvTimeout float64, replyMode uintptr, returnData *uintptr) int32
	CFMessagePortSetDispatchQueue       func(port, queue uintptr)
	CFMessagePortInvalidate             func(port uintptr)
	CFMessagePortIsValid                func(port uintptr) bool
	CFMessagePortIsRemote               func(port uintptr) bool
	CFDataCreate                        func(allocator uintptr, bytes unsafe.Pointer, length int64) uintptr
	CFDataGetBytePtr                    func(data uintptr) unsafe.Pointer
	CFDataGetLength                     func(data uintptr) int64
	DispatchQueueCreate                 func(label string, attr uintptr) uintptr
	DispatchRelease                     func(object uintptr)
)

// CoreFoundation's run loop calls that end a CFMessagePortSendRequest that waits (package
// internal/cfport, Remote.Close and a cancelled request). CFMessagePortSendRequest runs the
// calling thread's run loop (CFRunLoopGetCurrent, not retained: it lives as long as the thread)
// until the reply comes, the timeout passes, or, after a run returns, the remote is no longer
// valid (CFMessagePort.c, CFMessagePortSendRequest). CFRunLoopStop makes a running loop return and
// wakes it (CFRunLoop.c: it acts only while the loop runs a mode).
var (
	CFRunLoopGetCurrent func() uintptr
	CFRunLoopStop       func(rl uintptr)
)

func init() {
	Funcs = append(Funcs,
		Func{Name: "CFRunLoopGetCurrent", Lib: LibCoreFoundation, Fn: &CFRunLoopGetCurrent},
		Func{Name: "CFRunLoopStop", Lib: LibCoreFoundation, Fn: &CFRunLoopStop},
	)
}

// CFMessagePortContext is CoreFoundation's CFMessagePortContext (checked against the SDK layout
// on both targets). machport passes a small integer handle as Info, never a Go pointer.
type CFMessagePortContext struct {
	Version         int64
	Info            uintptr
	Retain          uintptr
	Release         uintptr
	CopyDescription uintptr
}

// CFMessagePortCallBackFunc is the Go shape of CFMessagePortCallBack: (port, msgid, data, info)
// -> reply data, which CF releases after sending it. Make it once with purego.NewCallback, which
// never frees a callback.
type CFMessagePortCallBackFunc = func(port uintptr, msgid int32, data uintptr, info uintptr) uintptr

// Callback is a C function-pointer typedef and the Go function type that implements it.
type Callback struct {
	Typedef string // the SDK's typedef name
	Type    any    // a nil value of the Go func type
}

// Callbacks lists every callback machport hands to C; the tests check each against its typedef.
var Callbacks = []Callback{
	{Typedef: "CFMessagePortCallBack", Type: CFMessagePortCallBackFunc(nil)},
}

// sandbox_check(pid, operation, type, ...) is variadic, which purego cannot express. On Apple
// arm64 every variadic argument goes on the stack, so the arm64 binding fills the remaining
// integer registers (x3..x7) with padding and passes the variadic argument as the ninth, which
// purego puts in the first stack slot. On amd64 variadic arguments travel like fixed ones.
// sandboxcheck's policy_libsystem.go calls it, picking the variant for the architecture.
var (
	SandboxCheckArm64 func(pid int32, operation unsafe.Pointer, filter uint32, _, _, _, _, _ uintptr, arg unsafe.Pointer) int32
	SandboxCheckAmd64 func(pid int32, operation unsafe.Pointer, filter uint32, arg unsafe.Pointer) int32
)

// Addresses of data symbols, filled by the loaders.
var (
	// MachTaskSelfAddr is the address of mach_task_self_, a mach_port_t holding this task's name
	// for itself (mach_task_self() is a macro reading it).
	MachTaskSelfAddr uintptr
	// BootstrapPortAddr is the address of bootstrap_port, the task's send right to launchd.
	BootstrapPortAddr uintptr
	// SandboxCheckNoReportAddr is the address of SANDBOX_CHECK_NO_REPORT, a flag OR-ed into
	// sandbox_check's filter type so that a probe is not logged as a violation. Its value is in
	// no header, only in this data symbol.
	SandboxCheckNoReportAddr uintptr
	// CFRunLoopDefaultModeAddr is the address of kCFRunLoopDefaultMode, a CFStringRef: the reply
	// mode CFMessagePortSendRequest is given to wait for a reply.
	CFRunLoopDefaultModeAddr uintptr
)

// Funcs lists every function the loaders bind (Load, LoadCoreFoundation, LoadSecurity). The
// private ones (not declared in the iOS SDK, or private on macOS too) are appended by
// bindings_private.go, which public-only builds leave out (mode.go).
var Funcs = []Func{
	{Name: "mach_msg", Lib: LibKernel, Fn: &MachMsg},
	{Name: "mach_msg_destroy", Lib: LibKernel, Fn: &MachMsgDestroy},
	{Name: "mach_port_allocate", Lib: LibKernel, Fn: &MachPortAllocate},
	{Name: "mach_port_construct", Lib: LibKernel, Fn: &MachPortConstruct},
	{Name: "mach_port_destruct", Lib: LibKernel, Fn: &MachPortDestruct},
	{Name: "mach_port_deallocate", Lib: LibKernel, Fn: &MachPortDeallocate},
	{Name: "mach_port_mod_refs", Lib: LibKernel, Fn: &MachPortModRefs},
	{Name: "mach_port_insert_right", Lib: LibKernel, Fn: &MachPortInsertRight},
	{Name: "mach_port_extract_right", Lib: LibKernel, Fn: &MachPortExtractRight},
	{Name: "mach_port_get_refs", Lib: LibKernel, Fn: &MachPortGetRefs},
	{Name: "mach_port_type", Lib: LibKernel, Fn: &MachPortType},
	{Name: "mach_port_request_notification", Lib: LibKernel, Fn: &MachPortRequestNotification},
	{Name: "mach_port_set_attributes", Lib: LibKernel, Fn: &MachPortSetAttributes},
	{Name: "mach_port_get_attributes", Lib: LibKernel, Fn: &MachPortGetAttributes},
	{Name: "mach_port_move_member", Lib: LibKernel, Fn: &MachPortMoveMember},
	{Name: "mach_port_insert_member", Lib: LibKernel, Fn: &MachPortInsertMember},
	{Name: "mach_port_extract_member", Lib: LibKernel, Fn: &MachPortExtractMember},
	{Name: "mach_port_names", Lib: LibKernel, Fn: &MachPortNames},
	{Name: "vm_allocate", Lib: LibKernel, Fn: &VMAllocate},
	{Name: "vm_deallocate", Lib: LibKernel, Fn: &VMDeallocate},
	{Name: "mach_error_string", Lib: LibKernel, Fn: &MachErrorString, Optional: true},
	{Name: "CFStringCreateWithCString", Lib: LibCoreFoundation, Fn: &CFStringCreateWithCString},
	{Name: "CFStringGetCString", Lib: LibCoreFoundation, Fn: &CFStringGetCString},
	{Name: "CFStringGetLength", Lib: LibCoreFoundation, Fn: &CFStringGetLength},
	{Name: "CFStringGetTypeID", Lib: LibCoreFoundation, Fn: &CFStringGetTypeID},
	{Name: "CFGetTypeID", Lib: LibCoreFoundation, Fn: &CFGetTypeID},
	{Name: "CFRelease", Lib: LibCoreFoundation, Fn: &CFRelease},
	{Name: "CFMessagePortCreateLocal", Lib: LibCoreFoundation, Fn: &CFMessagePortCreateLocal},
	{Name: "CFMessagePortCreateRemote", Lib: LibCoreFoundation, Fn: &CFMessagePortCreateRemote},
	{Name: "CFMessagePortSendRequest", Lib: LibCoreFoundation, Fn: &CFMessagePortSendRequest},
	{Name: "CFMessagePortSetDispatchQueue", Lib: LibCoreFoundation, Fn: &CFMessagePortSetDispatchQueue},
	{Name: "CFMessagePortInvalidate", Lib: LibCoreFoundation, Fn: &CFMessagePortInvalidate},
	{Name: "CFMessagePortIsValid", Lib: LibCoreFoundation, Fn: &CFMessagePortIsValid},
	{Name: "CFMessagePortIsRemote", Lib: LibCoreFoundation, Fn: &CFMessagePortIsRemote},
	{Name: "CFDataCreate", Lib: LibCoreFoundation, Fn: &CFDataCreate},
	{Name: "CFDataGetBytePtr", Lib: LibCoreFoundation, Fn: &CFDataGetBytePtr},
	{Name: "CFDataGetLength", Lib: LibCoreFoundation, Fn: &CFDataGetLength},
	{Name: "dispatch_queue_create", Lib: LibDispatch, Fn: &DispatchQueueCreate, Optional: true},
	{Name: "dispatch_release", Lib: LibDispatch, Fn: &DispatchRelease, Optional: true},
}

// VariadicFunc is a C variadic function bound once per architecture, because the two Darwin
// ABIs place variadic arguments differently (see SandboxCheckArm64).
type VariadicFunc struct {
	Name    string
	Lib     string
	Arm64   any      // pointer to the darwin/arm64 func variable: fixed, padding, then variadic
	Amd64   any      // pointer to the darwin/amd64 func variable: fixed, then variadic
	VarArgs []string // canonical C types of the variadic arguments this binding passes
	// Optional: a missing symbol leaves the variables nil instead of failing its image's load.
	Optional bool
}

// VariadicFuncs lists every variadic function the loaders bind: only sandbox_check, which is
// private (bindings_private.go).
var VariadicFuncs []VariadicFunc

// Arm64IntRegisters is how many integer argument registers (x0..x7) Apple's arm64 ABI has.
const Arm64IntRegisters = 8

// DataSymbols lists every data symbol the loaders resolve (the private ones: bindings_private.go).
var DataSymbols = []Data{
	{Name: "mach_task_self_", Lib: LibKernel, Addr: &MachTaskSelfAddr, Type: uint32(0)},
	{Name: "kCFRunLoopDefaultMode", Lib: LibCoreFoundation, Addr: &CFRunLoopDefaultModeAddr, Type: uintptr(0)},
}

// Peer identity (package peer): the executable and code signature of the process an audit token
// names. csops_audittoken fails with ESRCH unless the token's pid and pid version are the
// process's (csops_internal, xnu bsd/kern/kern_proc.c), which is what ties proc_pidpath's answer
// to the token. The Security and CFDictionary calls check a code-signing requirement against the
// token (SecCodeCopyGuestWithAttributes with kSecGuestAttributeAudit, then SecCodeCheckValidity).
// They are optional: a missing one makes peer's code-signing check fail, not the image's load.
// Objects are uintptr (C pointers the Go garbage collector must not trace); OSStatus is int32
// and SecCSFlags uint32.
var (
	CsopsAudittoken                func(pid int32, ops uint32, addr unsafe.Pointer, size uint64, token *[8]uint32) int32
	ProcPidpath                    func(pid int32, buf unsafe.Pointer, size uint32) int32
	SecRequirementCreateWithString func(text uintptr, flags uint32, requirement *uintptr) int32
	SecCodeCopyGuestWithAttributes func(host, attributes uintptr, flags uint32, guest *uintptr) int32
	SecCodeCheckValidity           func(code uintptr, flags uint32, requirement uintptr) int32
	CFDictionaryCreate             func(allocator uintptr, keys, values unsafe.Pointer, count int64, keyCallBacks, valueCallBacks uintptr) uintptr
)

// Addresses of the data symbols the code-signing check needs: kSecGuestAttributeAudit (a
// CFStringRef, read with ReadUintptr) and the CFType dictionary callbacks (structs passed by
// address, never read: CFDictionaryKeyCallBacks is a CFIndex and five function pointers,
// CFDictionaryValueCallBacks a CFIndex and four).
var (
	SecGuestAttributeAuditAddr         uintptr
	CFTypeDictionaryKeyCallBacksAddr   uintptr
	CFTypeDictionaryValueCallBacksAddr uintptr
)

// MachPortPeek is mach_port_peek (<mach/mach_port.h>, the MIG routine of xnu's mach_port.defs):
// task, name, trailer_type, the sequence number (in: which message, 0 for the first; out: its
// number), the message's size and id, the trailer buffer (mach_msg_trailer_info_t, char *) and
// its size in bytes (in: room; out: the requested trailer's size).
var MachPortPeek func(task, name, trailerType uint32, seqno, msgSize *uint32, msgID *int32, trailerInfo *int8, trailerInfoCnt *uint32) int32

// peekNotInFacts is where mach_port_peek's prototype comes from: the SDK exports it, but the SDK
// facts were made without it. TestMachPortPeekParams checks each parameter against the facts'
// typedefs of the prototype's types.
const peekNotInFacts = "not in darwin-abi.json; prototype from the macOS SDK's mach/mach_port.h (xnu mach_port.defs routine mach_port_peek)"

func init() {
	Funcs = append(Funcs, Func{Name: "mach_port_peek", Lib: LibKernel, Fn: &MachPortPeek, Optional: true, Unchecked: peekNotInFacts})
}

// Another process's audit token (peer.TokenForPID, machping check-peer). task_name_for_pid
// gives a send right to the process's task name port (to root, the process itself, or a caller
// with the same effective and real user: xnu bsd/vm/vm_unix.c task_name_for_pid), and
// task_info(TASK_AUDIT_TOKEN) reads the token, pid version included, from the task behind it:
// task_info_from_user (osfmk/kern/task.c) resolves every flavor but TASK_DYLD_INFO through
// convert_port_to_task_name, so the name port suffices. The caller deallocates the name.
//
// Neither prototype is in the SDK facts (task_info is exported there, task_name_for_pid not at
// all), nor is TASK_AUDIT_TOKEN: the prototypes come from the SDK's <mach/mach_traps.h>
// (task_name_for_pid, declared beside task_for_pid with the same parameters) and <mach/task.h>
// (task_info: task_name_t, task_flavor_t, task_info_t = integer_t *, mach_msg_type_number_t *);
// the constants from xnu osfmk/mach/task_info.h. taskbindings_test.go checks what the facts
// allow (task_for_pid's prototype, the typedefs, audit_token_t's size).
var (
	TaskNameForPID func(target uint32, pid int32, tn *uint32) int32
	TaskInfo       func(task, flavor uint32, info *int32, count *uint32) int32
)

// TASK_AUDIT_TOKEN and TASK_AUDIT_TOKEN_COUNT (sizeof(audit_token_t) / sizeof(natural_t)), from
// xnu osfmk/mach/task_info.h; not in the SDK facts.
const (
	TaskAuditToken      = 15
	TaskAuditTokenCount = 8
)

// notInFactsTask is where the task calls' prototypes come from. (It names no private symbol: it
// is linked into public-only builds too.)
const notInFactsTask = "prototype not in darwin-abi.json; from the SDK's <mach/mach_traps.h> and <mach/task.h>; checked in part by taskbindings_test.go"

func init() {
	Funcs = append(Funcs,
		// task_name_for_pid is private: bindings_private.go.
		Func{Name: "task_info", Lib: LibKernel, Fn: &TaskInfo, Optional: true, Unchecked: notInFactsTask},
	)
}

// notify(3): Darwin notifications (<notify.h>, libsystem_notify, re-exported by libSystem),
// public on macOS and iOS, so in this table and not the private one. notify_register_dispatch
// (a block) and notify_register_signal / _file_descriptor are not bound: package notify uses
// Mach ports and polling only. Status codes are uint32_t, tokens int; const char * is a Go
// string (purego copies it with its NUL).
const LibNotify = "/usr/lib/system/libsystem_notify.dylib"

// The notify functions package notify calls (notify_libsystem.go).
var (
	NotifyPost             func(name string) uint32
	NotifyRegisterCheck    func(name string, token *int32) uint32
	NotifyRegisterMachPort func(name string, port *uint32, flags int32, token *int32) uint32
	NotifyCheck            func(token int32, check *int32) uint32
	NotifyGetState         func(token int32, state *uint64) uint32
	NotifySetState         func(token int32, state uint64) uint32
	NotifySuspend          func(token int32) uint32
	NotifyResume           func(token int32) uint32
	NotifyCancel           func(token int32) uint32
	NotifyIsValidToken     func(token int32) bool
)

func init() {
	Funcs = append(Funcs,
		Func{Name: "notify_post", Lib: LibNotify, Fn: &NotifyPost, Optional: true},
		Func{Name: "notify_register_check", Lib: LibNotify, Fn: &NotifyRegisterCheck, Optional: true},
		Func{Name: "notify_register_mach_port", Lib: LibNotify, Fn: &NotifyRegisterMachPort, Optional: true},
		Func{Name: "notify_check", Lib: LibNotify, Fn: &NotifyCheck, Optional: true},
		Func{Name: "notify_get_state", Lib: LibNotify, Fn: &NotifyGetState, Optional: true},
		Func{Name: "notify_set_state", Lib: LibNotify, Fn: &NotifySetState, Optional: true},
		Func{Name: "notify_suspend", Lib: LibNotify, Fn: &NotifySuspend, Optional: true},
		Func{Name: "notify_resume", Lib: LibNotify, Fn: &NotifyResume, Optional: true},
		Func{Name: "notify_cancel", Lib: LibNotify, Fn: &NotifyCancel, Optional: true},
		Func{Name: "notify_is_valid_token", Lib: LibNotify, Fn: &NotifyIsValidToken, Optional: true},
	)
}
