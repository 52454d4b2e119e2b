//go:build linux

// Package libsystemdouble is a stand-in for libSystem on Linux, installed behind the function
// variables of internal/darwin, so that the Darwin logic of machport (mach/kernel_libsystem.go)
// runs in Linux tests exactly as it would call libSystem on macOS.
//
// It follows xnu's semantics by delegating to the emulation (internal/emu), which already
// speaks Darwin's wire format, and it reads and writes through the same pointers C would:
// mach_msg reads the header, the descriptors and the memory behind raw out-of-line addresses
// from the buffer it is given, and writes the received message, its trailer, and the address and
// size of each mapped region back into it; vm_deallocate unmaps; mach_port_names returns arrays
// in memory the caller must vm_deallocate. It injects the faults a real kernel produces (see
// Fault, After and PhysicalCopies).
//
// It binds the Mach functions of libsystem_kernel and mach_task_self_ (installMach), launchd's
// bootstrap_* calls and bootstrap_port over a Namespace (bootstrap.go), and sandbox_check,
// SANDBOX_CHECK_NO_REPORT, csops and the SecTask and CFString calls the entitlements need
// (sandbox.go), the audit-token, CFDictionary and SecCode calls of peer's code-signing checks
// (security.go) over Apple's requirement language (requirement.go), and task_name_for_pid and
// task_info(TASK_AUDIT_TOKEN) (task.go). UseDarwinLogic (seam.go) switches machport's packages to their Darwin logic over
// it.
package libsystemdouble

import (
	"sync"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/internal/emu"
)

// TaskSelfName is the value of the double's mach_task_self_. It ends in 0xb, which the emulation
// never gives a port (its names end in 3), so it names nothing else.
const TaskSelfName = 0x10b

var (
	installOnce sync.Once
	// taskSelf is mach_task_self_: heap memory whose address Install publishes as the data
	// symbol's, as dlsym would.
	taskSelf = new(uint32)
	// opened records the libraries Install "opened", in order.
	opened []string
)

// Install binds internal/darwin's Mach variables to the double and publishes mach_task_self_.
// It runs once per process; later calls do nothing.
func Install() {
	installOnce.Do(func() {
		*taskSelf = TaskSelfName
		darwin.MachTaskSelfAddr = uintptr(unsafe.Pointer(taskSelf))
		opened = append(opened, darwin.LibSystem)
		installMach()
		installPeek()
		installLaunchd()
		installSandbox()
		installSecurity()
		installTask()
		installCFMessagePort()
		installNotify()
		makeCarrier()
	})
}

// TaskSelf reads mach_task_self_ through the address Install published, as the Darwin loader
// reads the data symbol (which here lives in Go memory: hence no checkptr).
//
//go:nocheckptr
func TaskSelf() uint32 {
	return *(*uint32)(unsafe.Add(unsafe.Pointer(nil), darwin.MachTaskSelfAddr))
}

// Opened returns the libraries the double was asked to open (only libSystem so far).
func Opened() []string { return append([]string(nil), opened...) }

func installMach() {
	darwin.MachMsg = machMsg
	darwin.MachMsgDestroy = machMsgDestroy
	darwin.MachPortAllocate = func(task, right uint32, name *uint32) int32 {
		if kr := enter("mach_port_allocate", task, 0); kr != 0 {
			return kr
		}
		n, kr := emu.Allocate(right)
		*name = n
		return leave("mach_port_allocate", 0, kr)
	}
	darwin.MachPortConstruct = func(task uint32, options unsafe.Pointer, context uint64, name *uint32) int32 {
		if kr := enter("mach_port_construct", task, 0); kr != 0 {
			return kr
		}
		// mach_port_options_t: flags, then mpl.mpl_qlimit (<mach/mach_port.h>).
		opts := unsafe.Slice((*byte)(options), 8)
		n, kr := emu.Construct(le32(opts[0:]), le32(opts[4:]), context)
		*name = n
		return leave("mach_port_construct", 0, kr)
	}
	darwin.MachPortDestruct = func(task, name uint32, srdelta int32, guard uint64) int32 {
		if kr := enter("mach_port_destruct", task, name); kr != 0 {
			return kr
		}
		return leave("mach_port_destruct", name, emu.Destruct(name, srdelta, guard))
	}
	darwin.MachPortDeallocate = func(task, name uint32) int32 {
		if kr := enter("mach_port_deallocate", task, name); kr != 0 {
			return kr
		}
		return leave("mach_port_deallocate", name, emu.Deallocate(name))
	}
	darwin.MachPortModRefs = func(task, name, right uint32, delta int32) int32 {
		if kr := enter("mach_port_mod_refs", task, name); kr != 0 {
			return kr
		}
		return leave("mach_port_mod_refs", name, emu.ModRefs(name, right, delta))
	}
	darwin.MachPortInsertRight = func(task, name, poly, polyPoly uint32) int32 {
		if kr := enter("mach_port_insert_right", task, name); kr != 0 {
			return kr
		}
		return leave("mach_port_insert_right", name, emu.InsertRight(name, poly, polyPoly))
	}
	darwin.MachPortExtractRight = func(task, name, msgtName uint32, poly, polyPoly *uint32) int32 {
		if kr := enter("mach_port_extract_right", task, name); kr != 0 {
			return kr
		}
		n, t, kr := emu.ExtractRight(name, msgtName)
		*poly, *polyPoly = n, t
		return leave("mach_port_extract_right", name, kr)
	}
	darwin.MachPortGetRefs = func(task, name, right uint32, refs *uint32) int32 {
		if kr := enter("mach_port_get_refs", task, name); kr != 0 {
			return kr
		}
		n, kr := emu.GetRefs(name, right)
		*refs = n
		return leave("mach_port_get_refs", name, kr)
	}
	darwin.MachPortType = func(task, name uint32, ptype *uint32) int32 {
		if kr := enter("mach_port_type", task, name); kr != 0 {
			return kr
		}
		t, kr := emu.Type(name)
		*ptype = t
		return leave("mach_port_type", name, kr)
	}
	darwin.MachPortRequestNotification = func(task, name uint32, msgid int32, sync, notify, notifyPoly uint32, previous *uint32) int32 {
		if kr := enter("mach_port_request_notification", task, name); kr != 0 {
			return kr
		}
		prev, kr := emu.RequestNotification(name, msgid, sync, notify, notifyPoly)
		*previous = prev
		return leave("mach_port_request_notification", name, kr)
	}
	darwin.MachPortSetAttributes = func(task, name uint32, flavor int32, info *int32, count uint32) int32 {
		if kr := enter("mach_port_set_attributes", task, name); kr != 0 {
			return kr
		}
		return leave("mach_port_set_attributes", name, emu.SetAttributes(name, flavor, unsafe.Slice(info, count)))
	}
	darwin.MachPortGetAttributes = func(task, name uint32, flavor int32, info *int32, count *uint32) int32 {
		if kr := enter("mach_port_get_attributes", task, name); kr != 0 {
			return kr
		}
		n, kr := emu.GetAttributes(name, flavor, unsafe.Slice(info, *count))
		if kr == abi.KERN_SUCCESS {
			*count = uint32(n)
		}
		return leave("mach_port_get_attributes", name, kr)
	}
	darwin.MachPortMoveMember = func(task, member, after uint32) int32 {
		if kr := enter("mach_port_move_member", task, member); kr != 0 {
			return kr
		}
		return leave("mach_port_move_member", member, emu.MoveMember(member, after))
	}
	darwin.MachPortInsertMember = func(task, name, pset uint32) int32 {
		if kr := enter("mach_port_insert_member", task, name); kr != 0 {
			return kr
		}
		return leave("mach_port_insert_member", name, emu.InsertMember(name, pset))
	}
	darwin.MachPortExtractMember = func(task, name, pset uint32) int32 {
		if kr := enter("mach_port_extract_member", task, name); kr != 0 {
			return kr
		}
		return leave("mach_port_extract_member", name, emu.ExtractMember(name, pset))
	}
	darwin.MachPortNames = machPortNames
	darwin.VMAllocate = func(task uint32, address *uint64, size uint64, flags int32) int32 {
		if kr := enter("vm_allocate", task, 0); kr != 0 {
			return kr
		}
		if flags&abi.VM_FLAGS_ANYWHERE == 0 {
			return leave("vm_allocate", 0, abi.KERN_INVALID_ARGUMENT) // the double places memory only where the system likes
		}
		if size == 0 {
			*address = 0
			return leave("vm_allocate", 0, abi.KERN_SUCCESS)
		}
		addr, kr := emu.VMAllocate(int(size))
		*address = uint64(addr)
		return leave("vm_allocate", 0, kr)
	}
	darwin.VMDeallocate = func(task uint32, address, size uint64) int32 {
		if kr := enter("vm_deallocate", task, 0); kr != 0 {
			return kr
		}
		return leave("vm_deallocate", 0, emu.VMDeallocate(uintptr(address), int(size)))
	}
}

// machPortNames returns the two arrays as MIG does: out-of-line memory mapped in the caller's
// task, which the caller unmaps with vm_deallocate. The double's own carrier port is not listed:
// it is the double's plumbing, like the ports libSystem keeps for itself.
func machPortNames(task uint32, names **uint32, namesCount *uint32, types **uint32, typesCount *uint32) int32 {
	if kr := enter("mach_port_names", task, 0); kr != 0 {
		return kr
	}
	ns, ts := emu.Names()
	carrier := carrierName()
	var keepN, keepT []uint32
	for i := range ns {
		if ns[i] == carrier {
			continue
		}
		keepN, keepT = append(keepN, ns[i]), append(keepT, ts[i])
	}
	out := func(vals []uint32, p **uint32, count *uint32) int32 {
		*p, *count = nil, uint32(len(vals))
		if len(vals) == 0 {
			return abi.KERN_SUCCESS
		}
		addr, kr := emu.VMAllocate(len(vals) * 4)
		if kr != abi.KERN_SUCCESS {
			return kr
		}
		arr := unsafe.Slice((*uint32)(unsafe.Add(unsafe.Pointer(nil), addr)), len(vals))
		copy(arr, vals)
		*p = &arr[0]
		return abi.KERN_SUCCESS
	}
	if kr := out(keepN, names, namesCount); kr != abi.KERN_SUCCESS {
		return leave("mach_port_names", 0, kr)
	}
	if kr := out(keepT, types, typesCount); kr != abi.KERN_SUCCESS {
		if *namesCount > 0 {
			emu.VMDeallocate(uintptr(unsafe.Pointer(*names)), int(*namesCount)*4)
		}
		return leave("mach_port_names", 0, kr)
	}
	return leave("mach_port_names", 0, abi.KERN_SUCCESS)
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func put32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func le64(b []byte) uint64 { return uint64(le32(b)) | uint64(le32(b[4:]))<<32 }

func put64(b []byte, v uint64) { put32(b, uint32(v)); put32(b[4:], uint32(v>>32)) }
