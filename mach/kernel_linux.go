//go:build linux

package mach

import (
	"context"
	"sync"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/emu"
)

// The Linux emulation (internal/emu) behind the kernel seam. Messages cross the seam in the
// Darwin wire format, so this adapter decodes and encodes them with the same codec the Darwin
// kernel path uses.

func init() { sys = linuxKernel{} }

type linuxKernel struct{}

func duration(ms int) time.Duration {
	if ms < 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

// Pools of messages for the emulation: separate for sending (whose Body aliases the caller's
// buffer) and receiving (whose Body keeps its capacity from one receive to the next).
var (
	emuMsgs     = sync.Pool{New: func() any { return new(emu.Msg) }}
	emuRecvMsgs = sync.Pool{New: func() any { return new(emu.Msg) }}
)

// send reads the message straight out of the wire bytes (no Message is built, nothing is
// copied) and hands it to the emulation.
func (linuxKernel) send(buf []byte, ool [][]byte, timeoutMS int) int32 {
	if len(buf) < headerSize {
		return abi.MACH_SEND_MSG_TOO_SMALL
	}
	size := int(le.Uint32(buf[offSize:]))
	if size < headerSize || size > len(buf) || size%4 != 0 {
		return abi.MACH_SEND_MSG_TOO_SMALL
	}
	em := emuMsgs.Get().(*emu.Msg)
	defer emuMsgs.Put(em)
	bits := Bits(le.Uint32(buf[offBits:]))
	*em = emu.Msg{Bits: uint32(bits), Remote: le.Uint32(buf[offRemote:]), Local: le.Uint32(buf[offLocal:]),
		Voucher: le.Uint32(buf[offVoucher:]), ID: int32(le.Uint32(buf[offID:])), Descs: em.Descs[:0]}
	off := headerSize
	if bits.Complex() {
		if size < baseSize {
			return abi.MACH_SEND_MSG_TOO_SMALL
		}
		count := int(le.Uint32(buf[offCount:]))
		off = baseSize
		nool := 0
		for i := 0; i < count; i++ {
			if off+portDescriptorSize > size {
				return abi.MACH_SEND_MSG_TOO_SMALL
			}
			switch DescriptorType(buf[off+descriptorTypeByte]) {
			case PortDescriptorType:
				em.Descs = append(em.Descs, emu.Desc{Name: le.Uint32(buf[off:]), Disp: buf[off+10]})
				off += portDescriptorSize
			case OOLDescriptorType:
				if off+oolDescriptorSize > size {
					return abi.MACH_SEND_MSG_TOO_SMALL
				}
				var data []byte
				if nool < len(ool) {
					data = ool[nool]
				}
				nool++
				n := le.Uint32(buf[off+12:])
				if uint32(len(data)) != n {
					return abi.MACH_SEND_INVALID_MEMORY // a raw address the emulation cannot read
				}
				em.Descs = append(em.Descs, emu.Desc{Memory: true, Data: data, Addr: uintptr(le.Uint64(buf[off:])),
					Size: n, Dealloc: buf[off+8] != 0, Copy: buf[off+9]})
				off += oolDescriptorSize
			default:
				return abi.MACH_SEND_INVALID_TYPE // out-of-line port arrays and guarded ports are not emulated
			}
		}
	}
	em.Body = buf[off:size]
	ret := emu.Send(em, duration(timeoutMS))
	if ret == abi.MACH_SEND_TIMED_OUT {
		writeHandedBack(buf, em)
	}
	em.Body = nil
	clear(em.Descs)
	if ret == emu.SendMoveReceiveRemote {
		return sendMoveReceiveRemote
	}
	return ret
}

// writeHandedBack writes the rights of a message the emulation handed back (a timed-out send)
// into its wire bytes, where the Darwin kernel's pseudo-receive writes them: the header's names
// and types, and each port descriptor's name and type. Out-of-line memory stays as it was.
func writeHandedBack(buf []byte, em *emu.Msg) {
	le.PutUint32(buf[offBits:], em.Bits)
	le.PutUint32(buf[offRemote:], em.Remote)
	le.PutUint32(buf[offLocal:], em.Local)
	off := baseSize
	for _, d := range em.Descs {
		if d.Memory {
			off += oolDescriptorSize
			continue
		}
		le.PutUint32(buf[off:], d.Name)
		buf[off+10] = d.Disp
		off += portDescriptorSize
	}
}

// receivedSize is msgh_size of a received message with the given descriptors and body.
func receivedSize(ports, memories, bodyLen int) int {
	n := headerSize + round4(bodyLen)
	if ports+memories > 0 {
		n += bodyCountSize + ports*portDescriptorSize + memories*oolDescriptorSize
	}
	return n
}

// receive writes the emulation's message into buf exactly as the Darwin kernel would: header,
// descriptors, the body padded to 4 bytes, then the audit trailer.
func (linuxKernel) receive(ctx context.Context, name Name, buf []byte, large bool, trailer TrailerElements, timeoutMS int) int32 {
	tsize := trailer.Size()
	if len(buf) < headerSize+tsize {
		return abi.MACH_RCV_TOO_LARGE // no room for any message (ipc_kmsg_too_large)
	}
	em := emuRecvMsgs.Get().(*emu.Msg)
	defer emuRecvMsgs.Put(em)
	need, ret := emu.Receive(ctx, uint32(name), len(buf)-tsize, receivedSize, large, duration(timeoutMS), em)
	switch ret {
	case abi.MACH_MSG_SUCCESS:
	case abi.MACH_RCV_TOO_LARGE:
		if len(buf) >= headerSize {
			le.PutUint32(buf[offSize:], uint32(need))
		}
		return ret
	case emu.RcvCanceled:
		return rcvCanceled
	case emu.RcvMalformed:
		return rcvMalformed
	default:
		return ret
	}
	b := buf[:need]
	le.PutUint32(b[offBits:], em.Bits)
	le.PutUint32(b[offSize:], uint32(need))
	le.PutUint32(b[offRemote:], em.Remote)
	le.PutUint32(b[offLocal:], em.Local)
	le.PutUint32(b[offVoucher:], 0)
	le.PutUint32(b[offID:], uint32(em.ID))
	off := headerSize
	if len(em.Descs) > 0 {
		le.PutUint32(b[offCount:], uint32(len(em.Descs)))
		off = baseSize
		for _, d := range em.Descs {
			if d.Memory {
				putOOLDescriptor(b[off:], uint64(d.Addr), d.Size, d.Dealloc, CopyOption(d.Copy), OOLDescriptorType)
				off += oolDescriptorSize
			} else {
				putPortDescriptor(b[off:], Name(d.Name), Disposition(d.Disp))
				off += portDescriptorSize
			}
		}
	}
	off += copy(b[off:], em.Body)
	clear(b[off:need])
	putTrailer(buf[need:need+tsize], em)
	return abi.MACH_MSG_SUCCESS
}

// putTrailer writes as much of a format-0 trailer as t holds (its length is the requested
// size), as xnu's ipc_kmsg_add_trailer fills the elements the receive asked for. The mac
// trailer's msgh_ad and msgh_labels stay zero, as xnu leaves them without a MAC policy.
func putTrailer(t []byte, em *emu.Msg) {
	clear(t)
	le.PutUint32(t[4:], uint32(len(t)))
	if len(t) >= seqnoTrailerSize {
		le.PutUint32(t[8:], em.Seqno)
	}
	if len(t) >= securityTrailerSize {
		le.PutUint32(t[12:], em.Sender[0])
		le.PutUint32(t[16:], em.Sender[1])
	}
	if len(t) >= auditTrailerSize {
		for i, v := range em.Audit {
			le.PutUint32(t[20+4*i:], v)
		}
	}
	if len(t) >= contextTrailerSize {
		le.PutUint64(t[offTrailerContext:], em.Context)
	}
}

// peek is mach_port_peek over the emulation, with xnu's checks (mach_port_peek): a trailer
// beyond the audit trailer, or more than tbuf holds, is KERN_INVALID_VALUE.
func (linuxKernel) peek(name Name, seqno uint32, trailer TrailerElements, tbuf []byte) (peekResult, int32) {
	if !name.Valid() {
		return peekResult{}, abi.KERN_INVALID_RIGHT
	}
	if trailer.elements() > abi.MACH_RCV_TRAILER_AUDIT || trailer.Size() > len(tbuf) {
		return peekResult{}, abi.KERN_INVALID_VALUE
	}
	pk, kr := emu.Peek(uint32(name), seqno)
	if kr != abi.KERN_SUCCESS {
		return peekResult{}, kr
	}
	tsize := trailer.Size()
	peekTrailer(tbuf[:tsize], pk.Seqno, pk.Sender, pk.Audit)
	return peekResult{seqno: pk.Seqno, size: peekedSize(receivedSize(pk.Ports, pk.Mems, pk.BodyLen), pk.Ports),
		id: pk.ID, trailerLen: tsize}, abi.KERN_SUCCESS
}

// destroy releases what a received message holds, as mach_msg_destroy does.
func (k linuxKernel) destroy(buf []byte) {
	var m Message
	if m.decode(buf) != nil {
		return
	}
	for _, p := range []Port{m.Remote, m.Voucher} {
		k.release(p)
	}
	for _, d := range m.Descriptors {
		switch d := d.(type) {
		case *PortDescriptor:
			k.release(d.Port)
		case *OOLDescriptor:
			emu.VMDeallocate(uintptr(d.Address), int(d.Size))
		}
	}
}

func (linuxKernel) release(p Port) {
	if !p.Name.Valid() {
		return
	}
	switch p.Disposition {
	case PortSend, PortSendOnce:
		emu.Deallocate(uint32(p.Name))
	case PortReceive:
		emu.ModRefs(uint32(p.Name), abi.MACH_PORT_RIGHT_RECEIVE, -1)
	}
}

func (linuxKernel) allocate(right PortRight) (Name, int32) {
	n, kr := emu.Allocate(uint32(right))
	return Name(n), kr
}

func (linuxKernel) construct(o portOptions) (Name, int32) {
	n, kr := emu.Construct(o.flags, o.queueLimit, o.context)
	return Name(n), kr
}

func (linuxKernel) destruct(n Name, srdelta int32, guard uint64) int32 {
	return emu.Destruct(uint32(n), srdelta, guard)
}

func (linuxKernel) deallocate(n Name) int32 { return emu.Deallocate(uint32(n)) }

func (linuxKernel) modRefs(n Name, r PortRight, delta int32) int32 {
	return emu.ModRefs(uint32(n), uint32(r), delta)
}

func (linuxKernel) getRefs(n Name, r PortRight) (uint32, int32) {
	return emu.GetRefs(uint32(n), uint32(r))
}

func (linuxKernel) portType(n Name) (PortType, int32) {
	t, kr := emu.Type(uint32(n))
	return PortType(t), kr
}

func (linuxKernel) insertRight(n, poly Name, d Disposition) int32 {
	return emu.InsertRight(uint32(n), uint32(poly), uint32(d))
}

func (linuxKernel) extractRight(n Name, d Disposition) (Name, Disposition, int32) {
	r, t, kr := emu.ExtractRight(uint32(n), uint32(d))
	return Name(r), Disposition(t), kr
}

func (linuxKernel) requestNotification(n Name, id int32, sync uint32, notify Name, d Disposition) (Name, int32) {
	prev, kr := emu.RequestNotification(uint32(n), id, sync, uint32(notify), uint32(d))
	return Name(prev), kr
}

func (linuxKernel) setAttributes(n Name, flavor int32, info []int32) int32 {
	return emu.SetAttributes(uint32(n), flavor, info)
}

func (linuxKernel) getAttributes(n Name, flavor int32, info []int32) (int, int32) {
	return emu.GetAttributes(uint32(n), flavor, info)
}

func (linuxKernel) insertMember(n, set Name) int32  { return emu.InsertMember(uint32(n), uint32(set)) }
func (linuxKernel) extractMember(n, set Name) int32 { return emu.ExtractMember(uint32(n), uint32(set)) }
func (linuxKernel) moveMember(n, set Name) int32    { return emu.MoveMember(uint32(n), uint32(set)) }

func (linuxKernel) names() ([]Name, []PortType, int32) {
	ns, ts := emu.Names()
	names := make([]Name, len(ns))
	types := make([]PortType, len(ts))
	for i := range ns {
		names[i], types[i] = Name(ns[i]), PortType(ts[i])
	}
	return names, types, abi.KERN_SUCCESS
}

func (linuxKernel) vmAllocate(size int) (uintptr, int32) { return emu.VMAllocate(size) }
func (linuxKernel) vmDeallocate(addr uintptr, size int) int32 {
	return emu.VMDeallocate(addr, size)
}

// peekedSize is the size mach_port_peek reports for a message that a receive would get with
// msgh_size received: the kernel's own representation, whose header is 8 bytes larger than the
// user's (USER_HEADER_SIZE_DELTA; xnu's tests/ipc/port_peek.c expects exactly that) and whose
// descriptors are all KERNEL_DESC_SIZE (16) bytes, 4 more than a 64-bit process's port
// descriptor (xnu osfmk/ipc/ipc_kmsg.c). The emulation reports what xnu would.
func peekedSize(received, ports int) uint32 { return uint32(received + 8 + 4*ports) }

// peekTrailer writes the trailer mach_port_peek hands back, as xnu's does: the message's queued
// trailer (format 0, whose size word stays MACH_MSG_TRAILER_MINIMUM_SIZE, as ipc_kmsg_get sets
// it) with the sequence number, cut to the requested size (mach_port_peek's memcpy).
func peekTrailer(t []byte, seqno uint32, sender [2]uint32, audit [8]uint32) {
	var max [auditTrailerSize]byte
	le.PutUint32(max[4:], minTrailerSize)
	le.PutUint32(max[8:], seqno)
	le.PutUint32(max[12:], sender[0])
	le.PutUint32(max[16:], sender[1])
	for i, v := range audit {
		le.PutUint32(max[20+4*i:], v)
	}
	copy(t, max[:])
}
