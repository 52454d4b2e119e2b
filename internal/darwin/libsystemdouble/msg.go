//go:build linux

package libsystemdouble

import (
	"context"
	"sync"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/emu"
)

// The wire layout of <mach/message.h> (#pragma pack(4), 64-bit descriptors). mach has the same
// constants unexported; the double cannot import mach, whose own tests install the double, and
// is the kernel's side of the layout, which mach's ABI tests hold to the SDK from the other.
const (
	headerSize     = 24 // mach_msg_header_t
	baseSize       = 28 // header + mach_msg_body_t
	portDescSize   = 12 // mach_msg_port_descriptor_t
	oolDescSize    = 16 // mach_msg_ool_descriptor_t
	descTypeByte   = 11 // the type field's byte in every descriptor
	offBits        = 0
	offSize        = 4
	offRemote      = 8
	offLocal       = 12
	offVoucher     = 16
	offID          = 20
	offCount       = 24
	auditTrailer   = 52 // mach_msg_audit_trailer_t
	maxDescriptors = emu.MaxDescriptors
)

// libsyscallOptions are the options libsyscall's mach_msg implements itself and does not pass
// to the trap (LIBMACH_OPTIONS in libsyscall/mach/mach_msg.c).
const libsyscallOptions = abi.MACH_SEND_INTERRUPT | abi.MACH_RCV_INTERRUPT

// machMsg is libsyscall's mach_msg: the trap, retried on MACH_SEND_INTERRUPTED unless the
// caller passed MACH_SEND_INTERRUPT, and on MACH_RCV_INTERRUPTED (receive only) unless it passed
// MACH_RCV_INTERRUPT.
func machMsg(msg unsafe.Pointer, option int32, sendSize, rcvSize, rcvName, timeout, notify uint32) int32 {
	trapOpt := option &^ libsyscallOptions
	mr := machMsgTrap(msg, trapOpt, sendSize, rcvSize, rcvName, timeout)
	if option&abi.MACH_SEND_INTERRUPT == 0 {
		for mr == abi.MACH_SEND_INTERRUPTED {
			mr = machMsgTrap(msg, trapOpt, sendSize, rcvSize, rcvName, timeout)
		}
	}
	if option&abi.MACH_RCV_INTERRUPT == 0 {
		for mr == abi.MACH_RCV_INTERRUPTED {
			mr = machMsgTrap(msg, trapOpt&^abi.MACH_SEND_MSG, 0, rcvSize, rcvName, timeout)
		}
	}
	return mr
}

// machMsgTrap is mach_msg_trap: send, then receive, as the options ask.
func machMsgTrap(msg unsafe.Pointer, option int32, sendSize, rcvSize, rcvName, timeout uint32) int32 {
	if option&abi.MACH_SEND_MSG != 0 {
		ms := -1
		if option&abi.MACH_SEND_TIMEOUT != 0 {
			ms = int(timeout)
		}
		if mr := send(msg, sendSize, ms); mr != abi.MACH_MSG_SUCCESS {
			return mr
		}
	}
	if option&abi.MACH_RCV_MSG != 0 {
		ms := -1
		if option&abi.MACH_RCV_TIMEOUT != 0 {
			ms = int(timeout)
		}
		return receive(msg, option, rcvSize, rcvName, ms)
	}
	return abi.MACH_MSG_SUCCESS
}

func duration(ms int) time.Duration {
	if ms < 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

// bytesAt is the memory at a C address. A C caller may pass any address, Go memory the caller
// pinned included (mach sends pinned Go slices out of line), which checkptr would refuse to
// rebuild from an integer: the kernel reads it by address all the same.
//
//go:nocheckptr
func bytesAt(addr uint64, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), uintptr(addr))), n)
}

// parse reads a message to send out of the caller's buffer, as ipc_kmsg_get_from_user and
// ipc_kmsg_copyin_body read it: sendSize bytes, and for each out-of-line descriptor the memory
// its raw address points at.
func parse(msg unsafe.Pointer, sendSize uint32, em *emu.Msg) int32 {
	if sendSize < headerSize || sendSize%4 != 0 {
		return abi.MACH_SEND_MSG_TOO_SMALL
	}
	b := unsafe.Slice((*byte)(msg), sendSize)
	bits := le32(b[offBits:])
	*em = emu.Msg{Bits: bits, Remote: le32(b[offRemote:]), Local: le32(b[offLocal:]),
		Voucher: le32(b[offVoucher:]), ID: int32(le32(b[offID:]))}
	off := uint32(headerSize)
	if bits&abi.MACH_MSGH_BITS_COMPLEX != 0 {
		if sendSize < baseSize {
			return abi.MACH_SEND_MSG_TOO_SMALL
		}
		count := le32(b[offCount:])
		if count > maxDescriptors {
			return abi.MACH_SEND_TOO_LARGE
		}
		off = baseSize
		for range count {
			if off+portDescSize > sendSize {
				return abi.MACH_SEND_MSG_TOO_SMALL
			}
			switch b[off+descTypeByte] {
			case abi.MACH_MSG_PORT_DESCRIPTOR:
				em.Descs = append(em.Descs, emu.Desc{Name: le32(b[off:]), Disp: b[off+10]})
				off += portDescSize
			case abi.MACH_MSG_OOL_DESCRIPTOR, abi.MACH_MSG_OOL_VOLATILE_DESCRIPTOR:
				if off+oolDescSize > sendSize {
					return abi.MACH_SEND_MSG_TOO_SMALL
				}
				addr, size := le64(b[off:]), le32(b[off+12:])
				if size > 0 && addr == 0 {
					return abi.MACH_SEND_INVALID_MEMORY
				}
				em.Descs = append(em.Descs, emu.Desc{Memory: true, Data: bytesAt(addr, size), Addr: uintptr(addr),
					Size: size, Dealloc: b[off+8] != 0, Copy: b[off+9]})
				off += oolDescSize
			case abi.MACH_MSG_OOL_PORTS_DESCRIPTOR, abi.MACH_MSG_GUARDED_PORT_DESCRIPTOR:
				if off+oolDescSize > sendSize {
					return abi.MACH_SEND_MSG_TOO_SMALL
				}
				return refuseUncarried(b[off : off+oolDescSize]) // not in the emulation: see oolports.go
			default:
				return abi.MACH_SEND_INVALID_TYPE
			}
		}
	}
	em.Body = b[off:sendSize]
	return abi.MACH_MSG_SUCCESS
}

// send is the send half of the trap.
func send(msg unsafe.Pointer, sendSize uint32, timeoutMS int) int32 {
	var em emu.Msg
	if mr := parse(msg, sendSize, &em); mr != abi.MACH_MSG_SUCCESS {
		return leave(CallSend, em.Remote, mr)
	}
	switch code := take(CallSend, em.Remote); code {
	case 0:
	case abi.MACH_SEND_INTERRUPTED, abi.MACH_SEND_TIMED_OUT, abi.MACH_SEND_NO_BUFFER:
		if mr := pseudoReceive(msg, sendSize, &em); mr != abi.MACH_MSG_SUCCESS {
			return leave(CallSend, em.Remote, mr) // copy-in failed: that is what the send reports
		}
		return leave(CallSend, em.Remote, code)
	default:
		return leave(CallSend, em.Remote, code)
	}
	// emu.SendMoveReceiveRemote passes through: a Mac moves a receive right to any task, the
	// emulation cannot, and the caller (mach) knows that code as the emulation's limit.
	dest := em.Remote
	mr := emu.Send(&em, duration(timeoutMS))
	if mr == abi.MACH_SEND_TIMED_OUT {
		handedBack(msg, sendSize, &em) // the emulation handed the message back, as xnu's pseudo-receive
	}
	return leave(CallSend, dest, mr)
}

// handedBack writes the rights of a message the emulation handed back into the caller's buffer,
// where ipc_kmsg_copyout_pseudo writes them: the header's names and types, and each port
// descriptor's. Out-of-line memory stays as it was.
func handedBack(msg unsafe.Pointer, sendSize uint32, em *emu.Msg) {
	b := unsafe.Slice((*byte)(msg), sendSize)
	put32(b[offBits:], em.Bits)
	put32(b[offRemote:], em.Remote)
	put32(b[offLocal:], em.Local)
	off := baseSize
	for _, d := range em.Descs {
		if d.Memory {
			off += oolDescSize
			continue
		}
		put32(b[off:], d.Name)
		b[off+10] = d.Disp
		off += portDescSize
	}
}

// The carrier is a port of the double's own through which a pseudo-receive copies a message in
// and out: sending it there copies the rights in (made rights are made, moved rights leave the
// caller's space, memory is copied), and receiving it copies them out under the names the
// caller's space gives them, as ipc_kmsg_copyout_pseudo does with a message whose send was
// interrupted.
var carrier struct {
	sync.Mutex
	name uint32
}

// makeCarrier makes the carrier port when the double is installed, and sends one message
// through it, so that what the emulation makes for it on first use (its channel) is there
// before any test counts descriptors.
func makeCarrier() {
	carrier.Lock()
	defer carrier.Unlock()
	n, kr := emu.Construct(abi.MPO_INSERT_SEND_RIGHT|abi.MPO_QLIMIT, 1, 0)
	if kr != abi.KERN_SUCCESS {
		return // pseudo-receives will fail with MACH_SEND_NO_BUFFER
	}
	carrier.name = n
	warm := emu.Msg{Bits: abi.MACH_MSG_TYPE_COPY_SEND, Remote: n}
	if emu.Send(&warm, 0) == abi.MACH_MSG_SUCCESS {
		var out emu.Msg
		emu.Receive(context.Background(), n, 1<<20, func(int, int, int) int { return 0 }, false, 0, &out)
	}
}

func carrierName() uint32 {
	carrier.Lock()
	defer carrier.Unlock()
	return carrier.name
}

// pseudoReceive copies the message in and hands it back in the caller's buffer: the header's
// rights as the types received (MACH_MSG_TYPE_PORT_*), under their names in this space, the
// descriptors likewise, out-of-line memory at the address of its new copy. The message keeps
// its size.
func pseudoReceive(msg unsafe.Pointer, sendSize uint32, em *emu.Msg) int32 {
	carrier.Lock()
	defer carrier.Unlock()
	if carrier.name == 0 {
		return abi.MACH_SEND_NO_BUFFER
	}
	remoteDisp := uint8(em.Bits & abi.MACH_MSGH_BITS_REMOTE_MASK)
	localDisp := uint8(em.Bits & abi.MACH_MSGH_BITS_LOCAL_MASK >> 8)
	if em.Remote == 0 || remoteDisp == 0 {
		return abi.MACH_SEND_INVALID_DEST
	}
	if em.Voucher != 0 {
		return abi.MACH_SEND_INVALID_VOUCHER
	}
	descs := []emu.Desc{{Name: em.Remote, Disp: remoteDisp}}
	if em.Local != 0 && localDisp != 0 {
		descs = append(descs, emu.Desc{Name: em.Local, Disp: localDisp})
	}
	header := len(descs)
	descs = append(descs, em.Descs...)
	c := emu.Msg{Bits: abi.MACH_MSG_TYPE_COPY_SEND | abi.MACH_MSGH_BITS_COMPLEX, Remote: carrier.name,
		ID: em.ID, Descs: descs, Body: em.Body}
	switch mr := emu.Send(&c, 0); mr {
	case abi.MACH_MSG_SUCCESS:
	case abi.MACH_SEND_INVALID_RIGHT:
		return abi.MACH_SEND_INVALID_DEST // the header's right was not one: the destination is
	default:
		return mr
	}
	var out emu.Msg
	size := func(ports, memories, body int) int { return 0 }
	if _, mr := emu.Receive(context.Background(), carrier.name, 1<<30, size, false, 0, &out); mr != abi.MACH_MSG_SUCCESS {
		return abi.MACH_SEND_NO_BUFFER
	}
	b := unsafe.Slice((*byte)(msg), sendSize)
	bits := em.Bits &^ abi.MACH_MSGH_BITS_PORTS_MASK
	bits |= uint32(out.Descs[0].Disp)
	put32(b[offRemote:], out.Descs[0].Name)
	if header == 2 {
		bits |= uint32(out.Descs[1].Disp) << 8
		put32(b[offLocal:], out.Descs[1].Name)
	}
	put32(b[offBits:], bits)
	off := uint32(baseSize)
	for _, d := range out.Descs[header:] {
		if d.Memory {
			putOOL(b[off:], d)
			off += oolDescSize
		} else {
			put32(b[off:], d.Name)
			b[off+10] = d.Disp
			off += portDescSize
		}
	}
	return abi.MACH_MSG_SUCCESS
}

// putOOL writes a received out-of-line descriptor: its address, deallocate, copy, type, size.
func putOOL(b []byte, d emu.Desc) {
	put64(b, uint64(d.Addr))
	var dealloc uint8
	if d.Dealloc {
		dealloc = 1
	}
	b[8], b[9], b[10], b[11] = dealloc, d.Copy, 0, abi.MACH_MSG_OOL_DESCRIPTOR
	put32(b[12:], d.Size)
}

// requestedTrailerSize is REQUESTED_TRAILER_SIZE of <mach/message.h>: the trailer the receive
// options ask for.
func requestedTrailerSize(option int32) int {
	switch (option >> 24) & 0xf {
	case 0:
		return 8 // mach_msg_trailer_t
	case 1:
		return 12 // seqno
	case 2:
		return 20 // security
	case 3:
		return auditTrailer
	case 4:
		return 60 // context
	default:
		return 68 // MAX_TRAILER_SIZE
	}
}

// receivedSize is msgh_size of a received message with the given descriptors and body.
func receivedSize(ports, memories, body int) int {
	n := headerSize + (body+3)&^3
	if ports+memories > 0 {
		n += 4 + ports*portDescSize + memories*oolDescSize
	}
	return n
}

// receive is the receive half of the trap: it dequeues through the emulation and writes the
// message into the caller's buffer as ipc_kmsg_put_to_user does, then the requested trailer.
func receive(msg unsafe.Pointer, option int32, rcvSize, name uint32, timeoutMS int) int32 {
	if code := take(CallReceive, name); code != 0 {
		return leave(CallReceive, name, code)
	}
	trailer := requestedTrailerSize(option)
	if int(rcvSize) < headerSize+trailer {
		// Too small for any message: xnu's ipc_kmsg_too_large gives MACH_RCV_TOO_LARGE.
		return leave(CallReceive, name, abi.MACH_RCV_TOO_LARGE)
	}
	var em emu.Msg
	large := option&abi.MACH_RCV_LARGE != 0
	need, mr := emu.Receive(context.Background(), name, int(rcvSize)-trailer, receivedSize, large, duration(timeoutMS), &em)
	b := unsafe.Slice((*byte)(msg), rcvSize)
	switch mr {
	case abi.MACH_MSG_SUCCESS:
	case abi.MACH_RCV_TOO_LARGE:
		if large {
			// mach_msg_receive_results copies ith_msize, the size the message would have,
			// into msgh_size; the message stays queued.
			put32(b[offSize:], uint32(need))
		}
		return leave(CallReceive, name, mr)
	default:
		// Including emu.RcvMalformed: a peer of the emulation wrote bytes that are not a
		// message (a Mac has no such peer); mach knows that code as the emulation's.
		return leave(CallReceive, name, mr)
	}
	put32(b[offBits:], em.Bits)
	put32(b[offSize:], uint32(need))
	put32(b[offRemote:], em.Remote)
	put32(b[offLocal:], em.Local)
	put32(b[offVoucher:], 0)
	put32(b[offID:], uint32(em.ID))
	off := headerSize
	if len(em.Descs) > 0 {
		put32(b[offCount:], uint32(len(em.Descs)))
		off = baseSize
		for _, d := range em.Descs {
			if d.Memory {
				if d.Size > 0 && takePhysical() {
					d.Dealloc, d.Copy = false, abi.MACH_MSG_PHYSICAL_COPY
				}
				putOOL(b[off:], d)
				off += oolDescSize
				continue
			}
			put32(b[off:], d.Name)
			put32(b[off+4:], 0)
			b[off+8], b[off+9], b[off+10], b[off+11] = 0, 0, d.Disp, abi.MACH_MSG_PORT_DESCRIPTOR
			off += portDescSize
		}
	}
	off += copy(b[off:], em.Body)
	clear(b[off:need])
	t := b[need : need+trailer]
	clear(t)
	put32(t[0:], abi.MACH_MSG_TRAILER_FORMAT_0)
	put32(t[4:], uint32(trailer))
	putTrailerFields(t, &em)
	return leave(CallReceive, name, abi.MACH_MSG_SUCCESS)
}

// machMsgDestroy is libsyscall's mach_msg_destroy: it releases the header's remote and voucher
// rights and every descriptor's right through the mach_port calls, and unmaps out-of-line
// memory only where deallocate is set (mach_msg_destroy_memory).
func machMsgDestroy(msg unsafe.Pointer) {
	b := unsafe.Slice((*byte)(msg), headerSize)
	bits := le32(b[offBits:])
	size := le32(b[offSize:])
	destroyPort(le32(b[offRemote:]), uint8(bits&abi.MACH_MSGH_BITS_REMOTE_MASK))
	destroyPort(le32(b[offVoucher:]), uint8(bits&abi.MACH_MSGH_BITS_VOUCHER_MASK>>16))
	if bits&abi.MACH_MSGH_BITS_COMPLEX == 0 || size < baseSize {
		leave("mach_msg_destroy", 0, 0)
		return
	}
	b = unsafe.Slice((*byte)(msg), size)
	count := le32(b[offCount:])
	off := uint32(baseSize)
descriptors:
	for range count {
		if off+portDescSize > size {
			break
		}
		switch b[off+descTypeByte] {
		case abi.MACH_MSG_PORT_DESCRIPTOR:
			destroyPort(le32(b[off:]), b[off+10])
			off += portDescSize
		case abi.MACH_MSG_OOL_DESCRIPTOR, abi.MACH_MSG_OOL_VOLATILE_DESCRIPTOR:
			if off+oolDescSize > size {
				break descriptors
			}
			if b[off+8] != 0 {
				emu.VMDeallocate(uintptr(le64(b[off:])), int(le32(b[off+12:])))
			}
			off += oolDescSize
		default:
			off += oolDescSize // the 64-bit layouts of the other descriptors are 16 bytes
		}
	}
	leave("mach_msg_destroy", 0, 0)
}

// destroyPort is libsyscall's mach_msg_destroy_port.
func destroyPort(name uint32, disp uint8) {
	if name == 0 || name == ^uint32(0) {
		return
	}
	switch disp {
	case abi.MACH_MSG_TYPE_MOVE_SEND, abi.MACH_MSG_TYPE_MOVE_SEND_ONCE:
		emu.Deallocate(name)
	case abi.MACH_MSG_TYPE_MOVE_RECEIVE:
		emu.ModRefs(name, abi.MACH_PORT_RIGHT_RECEIVE, -1)
	case abi.MACH_MSG_TYPE_MAKE_SEND:
		emu.InsertRight(name, name, abi.MACH_MSG_TYPE_MAKE_SEND)
		emu.Deallocate(name)
	case abi.MACH_MSG_TYPE_MAKE_SEND_ONCE:
		if so, _, kr := emu.ExtractRight(name, abi.MACH_MSG_TYPE_MAKE_SEND_ONCE); kr == abi.KERN_SUCCESS {
			emu.Deallocate(so)
		}
	}
}

// putTrailerFields fills the elements of a format-0 trailer that fit in t, as xnu's
// ipc_kmsg_add_trailer does: the sequence number, the sender's tokens, and the receiving port's
// context (ip_context) from the context trailer on. The mac trailer's msgh_ad and msgh_labels
// stay zero, as xnu leaves them without a MAC policy. The type and size words are the caller's.
func putTrailerFields(t []byte, em *emu.Msg) {
	if len(t) >= 12 {
		put32(t[8:], em.Seqno)
	}
	if len(t) >= 20 {
		put32(t[12:], em.Sender[0])
		put32(t[16:], em.Sender[1])
	}
	if len(t) >= auditTrailer {
		for i, v := range em.Audit {
			put32(t[20+4*i:], v)
		}
	}
	if len(t) >= 60 {
		put64(t[52:], em.Context)
	}
}
