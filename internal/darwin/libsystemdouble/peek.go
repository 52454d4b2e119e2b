//go:build linux

package libsystemdouble

import (
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/internal/emu"
)

// installPeek binds mach_port_peek.
func installPeek() { darwin.MachPortPeek = machPortPeek }

// machPortPeek is xnu's mach_port_peek (osfmk/ipc/mach_port.c) over the emulation's queue: the
// name must be a valid port name (else KERN_INVALID_RIGHT); a trailer beyond the audit trailer,
// or larger than the caller's count, is KERN_INVALID_VALUE (where xnu also raises a guard
// exception); the count becomes REQUESTED_TRAILER_SIZE; then the name must denote a receive
// right, and no message with the sequence number asked for (0: the first) is KERN_FAILURE. The
// trailer handed back is the message's queued one with the sequence number set, cut to the
// requested size: its size word stays MACH_MSG_TRAILER_MINIMUM_SIZE, as ipc_kmsg_get left it.
// The size is the kernel's representation of the message: 8 bytes more for the header, 4 more
// per port descriptor (KERNEL_DESC_SIZE), as xnu's tests/ipc/port_peek.c expects.
func machPortPeek(task, name, trailerType uint32, seqno, msgSize *uint32, msgID *int32, trailerInfo *int8, trailerInfoCnt *uint32) int32 {
	const call = "mach_port_peek"
	if kr := enter(call, task, name); kr != 0 {
		return kr
	}
	if name == 0 || name == ^uint32(0) {
		return leave(call, name, abi.KERN_INVALID_RIGHT)
	}
	elements := (trailerType >> 24) & 0xf
	size := requestedTrailerSize(int32(trailerType))
	if elements > abi.MACH_RCV_TRAILER_AUDIT || uint32(size) > *trailerInfoCnt {
		return leave(call, name, abi.KERN_INVALID_VALUE)
	}
	*trailerInfoCnt = uint32(size)
	pk, kr := emu.Peek(name, *seqno)
	if kr != abi.KERN_SUCCESS {
		return leave(call, name, kr)
	}
	*seqno = pk.Seqno
	*msgSize = uint32(receivedSize(pk.Ports, pk.Mems, pk.BodyLen) + 8 + 4*pk.Ports)
	*msgID = pk.ID
	var t [auditTrailer]byte
	put32(t[0:], abi.MACH_MSG_TRAILER_FORMAT_0)
	put32(t[4:], abi.MACH_MSG_TRAILER_MINIMUM_SIZE)
	em := emu.Msg{Seqno: pk.Seqno, Sender: pk.Sender, Audit: pk.Audit}
	putTrailerFields(t[:], &em)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(trailerInfo)), size), t[:size])
	return leave(call, name, abi.KERN_SUCCESS)
}
