//go:build linux

package libsystemdouble

import (
	"sync"

	"github.com/machport/machport/internal/abi"
)

// Out-of-line port arrays and guarded port descriptors have no form in the emulation, whose
// messages carry one record per right and no guard, so the double cannot deliver them (and a
// delivery it made up would test nothing a Mac does). What it does instead is what xnu's copy-in
// does first with such a descriptor (ipc_kmsg_copyin_ool_ports_descriptor reads the array of
// names from the sender's memory at the descriptor's address; ipc_kmsg_copyin_guarded_port_
// descriptor reads the context, flags and name): it reads the descriptor and the memory behind
// it through the raw address, records what it read (Uncarried), and then refuses the message
// with MACH_SEND_INVALID_TYPE before any right is copied in, so the send leaves every right and
// region with the caller, as the emulation's refusal does on Linux. A Linux test holds what the
// Darwin logic encoded against that record.

// UncarriedDescriptor is an out-of-line port array or guarded port descriptor as the double read
// it from a message it then refused.
type UncarriedDescriptor struct {
	Type        uint8    // MACH_MSG_OOL_PORTS_DESCRIPTOR or MACH_MSG_GUARDED_PORT_DESCRIPTOR
	Disposition uint8    // the array's, or the guarded port's
	Names       []uint32 // the array's names, read at its address; the guarded port's name
	Copy        uint8    // an array's copy option
	Deallocate  bool     // an array's deallocate flag
	Context     uint64   // a guarded port's context
	Flags       uint16   // a guarded port's guard flags
}

var uncarried struct {
	sync.Mutex
	list []UncarriedDescriptor
}

// Uncarried returns the descriptors of the refused messages read since the last call, in order,
// and forgets them.
func Uncarried() []UncarriedDescriptor {
	uncarried.Lock()
	defer uncarried.Unlock()
	l := uncarried.list
	uncarried.list = nil
	return l
}

// refuseUncarried reads one 16-byte out-of-line port array or guarded port descriptor, records
// it, and returns the code the send fails with: MACH_SEND_INVALID_MEMORY for an array whose
// address is null (vm_map_copyin fails), else MACH_SEND_INVALID_TYPE.
func refuseUncarried(d []byte) int32 {
	u := UncarriedDescriptor{Type: d[descTypeByte], Disposition: d[10]}
	if u.Type == abi.MACH_MSG_OOL_PORTS_DESCRIPTOR {
		addr, count := le64(d[0:]), le32(d[12:])
		if count > 1<<28 {
			return abi.MACH_SEND_TOO_LARGE // more names than a message may carry (ipc_kmsg_max_vm_space)
		}
		if count > 0 && addr == 0 {
			return abi.MACH_SEND_INVALID_MEMORY
		}
		u.Deallocate, u.Copy = d[8] != 0, d[9]
		names := bytesAt(addr, count*4)
		for i := range count {
			u.Names = append(u.Names, le32(names[4*i:]))
		}
	} else {
		u.Context, u.Flags = le64(d[0:]), uint16(d[8])|uint16(d[9])<<8
		u.Names = []uint32{le32(d[12:])}
	}
	uncarried.Lock()
	uncarried.list = append(uncarried.list, u)
	uncarried.Unlock()
	return abi.MACH_SEND_INVALID_TYPE
}
