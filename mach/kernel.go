package mach

import (
	"context"

	"github.com/machport/machport/internal/abi"
)

// rcvAuditOptions asks for the audit trailer: MACH_RCV_TRAILER_TYPE(FORMAT_0) |
// MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_AUDIT).
const rcvAuditOptions = abi.MACH_MSG_TRAILER_FORMAT_0<<28 | (abi.MACH_RCV_TRAILER_AUDIT&0xf)<<24

// kernel is the seam between the portable package and the platform: the Darwin kernel reached
// through libSystem (kernel_darwin.go), the Linux emulation, or nothing (kernel_other.go).
// Results are raw kern_return_t / mach_msg_return_t codes so that every platform reports the same
// values; the portable code wraps them in OpError.
//
// Messages cross the seam in the Darwin wire format (message.go), so encoding, decoding, right
// accounting and the notification rules above it are the same code on every platform.
type kernel interface {
	// send sends the message in buf[:msgh_size]. ool holds the memory of its out-of-line
	// descriptors, in order (the addresses in buf are the same memory; an emulation uses the
	// slices so that Go memory never round-trips through an integer). timeoutMS < 0 blocks. On a
	// pseudo-receive (MACH_SEND_TIMED_OUT and friends) buf holds the message as returned.
	send(buf []byte, ool [][]byte, timeoutMS int) int32
	// receive receives from name (a receive right or port set) into buf. large asks for
	// MACH_RCV_LARGE; trailer is the trailer to append (MACH_RCV_TRAILER_ELEMENTS); timeoutMS < 0
	// blocks; ctx cancellation returns errCanceled's code.
	receive(ctx context.Context, name Name, buf []byte, large bool, trailer TrailerElements, timeoutMS int) int32
	// destroy releases every right and out-of-line region a received message holds
	// (mach_msg_destroy).
	destroy(buf []byte)
	// peek is mach_port_peek: the message with sequence number seqno (0: the first) of a
	// receive right's queue, without receiving it; its trailer (as far as trailer asks, at most
	// the audit trailer) is written into tbuf, len(tbuf) bytes of room.
	peek(name Name, seqno uint32, trailer TrailerElements, tbuf []byte) (peekResult, int32)

	allocate(right PortRight) (Name, int32)
	construct(opts portOptions) (Name, int32)
	destruct(name Name, srdelta int32, guard uint64) int32
	deallocate(name Name) int32
	modRefs(name Name, right PortRight, delta int32) int32
	getRefs(name Name, right PortRight) (uint32, int32)
	portType(name Name) (PortType, int32)
	insertRight(name, poly Name, disp Disposition) int32
	extractRight(name Name, disp Disposition) (Name, Disposition, int32)
	requestNotification(name Name, id int32, sync uint32, notify Name, disp Disposition) (Name, int32)
	setAttributes(name Name, flavor int32, info []int32) int32
	getAttributes(name Name, flavor int32, info []int32) (int, int32)
	insertMember(name, set Name) int32
	extractMember(name, set Name) int32
	moveMember(name, set Name) int32
	names() ([]Name, []PortType, int32)

	vmAllocate(size int) (uintptr, int32)
	vmDeallocate(addr uintptr, size int) int32
}

// peekResult is what mach_port_peek returns beside its trailer.
type peekResult struct {
	seqno      uint32 // the message's sequence number
	size       uint32 // its size as the kernel holds it (see Peeked.Size)
	id         int32  // msgh_id
	trailerLen int    // the trailer's size: REQUESTED_TRAILER_SIZE
}

// portOptions is mach_port_options_t as the portable code fills it.
type portOptions struct {
	flags      uint32
	queueLimit uint32
	context    uint64
}

// Pseudo codes a kernel returns beside Mach's own; they lie outside the mach_msg_return_t space
// (real codes are small positive numbers) and never reach callers as MsgReturn values.
const (
	rcvCanceled           int32 = -0x7fff0001 // receive: ctx was canceled
	sendMoveReceiveRemote int32 = -0x7fff0002 // send: the emulation cannot move a receive right to another process
	rcvMalformed          int32 = -0x7fff0003 // receive: a peer wrote bytes that are not a message; dropped
)

// sys is the platform kernel; nil where there is none.
var sys kernel

// sysErr is why sys is nil, wrapping errors.ErrUnsupported.
var sysErr error

func getKernel(op string) (kernel, error) {
	if sys == nil {
		return nil, &OpError{Op: op, Err: sysErr}
	}
	return sys, nil
}
