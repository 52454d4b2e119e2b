// Package darwin binds the C functions and data symbols machport uses on macOS, with purego.
//
// This file is portable on purpose: the table of bindings and the Go function variables are
// declared on every platform, so that a test running on Linux can check each one against the
// macOS SDK facts (which dylib exports the symbol, and the width and signedness of every parameter
// and result). Only load_darwin.go, built for darwin && !ios, resolves them; elsewhere Load
// returns an error wrapping errors.ErrUnsupported and the variables stay nil.
//
// Status: builds for darwin/arm64 and darwin/amd64; checked against the macOS 13.3 SDK; not run on
// macOS yet.
package darwin

import "unsafe"

// Dylibs, as the SDK's .tbd stubs name the library that exports each symbol. All of them are
// re-exported by libSystem, which is what Load opens.
const (
	LibSystem = "/usr/lib/libSystem.B.dylib"
	LibKernel = "/usr/lib/system/libsystem_kernel.dylib"
	LibXPC    = "/usr/lib/system/libxpc.dylib"
)

// Func is one C function to bind.
type Func struct {
	Name     string // the C symbol, without the leading underscore
	Lib      string // the dylib that exports it (checked by the ABI test)
	Fn       any    // pointer to the Go func variable that purego fills
	Optional bool   // a missing symbol leaves Fn nil instead of failing Load
}

// Data is one C data symbol whose address Load records.
type Data struct {
	Name     string
	Lib      string
	Addr     *uintptr // receives the symbol's address
	Type     any      // a value of the Go type read at that address (checked by the ABI test)
	Optional bool
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
)

// Addresses of data symbols, filled by Load.
var (
	// MachTaskSelfAddr is the address of mach_task_self_, a mach_port_t holding this task's name
	// for itself (mach_task_self() is a macro reading it).
	MachTaskSelfAddr uintptr
	// BootstrapPortAddr is the address of bootstrap_port, the task's send right to launchd.
	BootstrapPortAddr uintptr
)

// Funcs lists every function Load binds.
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
	{Name: "bootstrap_register2", Lib: LibXPC, Fn: &BootstrapRegister2, Optional: true},
	{Name: "bootstrap_look_up", Lib: LibXPC, Fn: &BootstrapLookUp},
	{Name: "bootstrap_look_up2", Lib: LibXPC, Fn: &BootstrapLookUp2, Optional: true},
	{Name: "bootstrap_check_in", Lib: LibXPC, Fn: &BootstrapCheckIn},
}

// DataSymbols lists every data symbol Load resolves.
var DataSymbols = []Data{
	{Name: "mach_task_self_", Lib: LibKernel, Addr: &MachTaskSelfAddr, Type: uint32(0)},
	{Name: "bootstrap_port", Lib: LibKernel, Addr: &BootstrapPortAddr, Type: uint32(0)},
}
