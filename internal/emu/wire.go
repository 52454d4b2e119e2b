//go:build linux

package emu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// The datagram one message travels as on a channel. Little-endian; fds travel beside it with
// SCM_RIGHTS and records refer to them by index.
//
//	0  u32 magic            4  u16 version, u16 flags (bit 0: body in a memfd; bit 1: the
//	                           datagram ends with the u64 token of the lane right it uses)
//	8  u32 msgh_bits         12 i32 msgh_id
//	16 u32 body length       20 u16 descriptor count, u16 fd count
//	24 i16 body fd index     26 6 bytes zero
//	32 record: the reply right (kind 0 when there is none)
//	64 records: the descriptors, 32 bytes each
//	.. the inline body (unless it is in a memfd)
//	.. with flag bit 1, the u64 token of the send-once right this message uses (lane.go)
//
// Out-of-line memory travels in one memfd or, when large, in up to maxMemParts memfds at
// consecutive fd indices, each memPartSize bytes but the last: writes to one shmem file are
// serialised by its inode lock, so the sender fills the parts in parallel, and the receiver maps
// them back to back.
//
// A record:
//
//	0 u8 kind (0 none, 1 port right, 2 out-of-line memory, 3 receive right moved in-process,
//	  4 a port descriptor naming MACH_PORT_NULL or MACH_PORT_DEAD, the name in the size field)
//	1 u8 right type (16 receive, 17 send, 18 send-once) or the copy option
//	2 u8 deallocate   3 u8 memfd parts - 1   4 i16 fd index   6 i16 counter fd index
//	8 u32 memory size 12 u32 zero 16 [16]byte port id, or the u64 token of a moved receive right
//
// A lane record (kind 5) holds the lane's key at 16 and the right's token at 24. A send lane
// record (kind 6) holds the lane's key at 8 (over the size and zero words) and the port id at 16;
// its fd index, when the lane's write ends come with it, is the data channel's, the control
// channel's follows it, and the counter fd index is the port's queue counter's.
const (
	wireMagic       = 0x4d50454d // "MEPM"
	wireVersion     = 1
	wireHeaderSize  = 32
	wireRecordSize  = 32
	wireFixedSize   = wireHeaderSize + wireRecordSize
	flagBodyInMemfd = 1
	flagLaneToken   = 2

	// MaxDescriptors is the most descriptors one emulated message carries.
	MaxDescriptors = 1024
	// maxFDs is SCM_MAX_FD, the most fds one sendmsg passes.
	maxFDs = 253
	// inlineBodyMax is the largest body sent inside the datagram; larger bodies go in a memfd.
	inlineBodyMax = 16 << 10
	// maxDatagram bounds what a receiver reads.
	maxDatagram = wireFixedSize + MaxDescriptors*wireRecordSize + inlineBodyMax
)

// maxMemParts is the most memfds one out-of-line region travels in.
const maxMemParts = 8

var pageSize = uint64(unix.Getpagesize())

// memPartSize is the size of every part of a region of size bytes sent in parts memfds but the
// last, which holds the rest.
func memPartSize(size uint32, parts int) uint64 {
	if parts <= 1 {
		return uint64(size)
	}
	per := (uint64(size) + uint64(parts) - 1) / uint64(parts)
	return (per + pageSize - 1) &^ (pageSize - 1)
}

// memPart returns the offset and length of part i (computed in 64 bits: a region may be close
// to 4 GiB).
func memPart(size uint32, parts, i int) (off, n uint32) {
	per := memPartSize(size, parts)
	o := min(per*uint64(i), uint64(size))
	return uint32(o), uint32(min(per, uint64(size)-o))
}

const (
	kindNone     = 0
	kindPort     = 1
	kindMemory   = 2
	kindReceive  = 3
	kindNoPort   = 4
	kindLane     = 5
	kindSendLane = 6
)

// record is one right or memory region in a datagram.
type record struct {
	kind      uint8
	typ       uint8 // right type, or copy option for memory
	dealloc   bool
	fd        int16 // index into the fds, -1 for none
	counterFD int16
	parts     uint8 // memfds of out-of-line memory (at fd, fd+1, ...); 1 when size is 0
	size      uint32
	id        portID
	token     uint64 // a moved receive right's, or a lane right's
	laneKey   uint64
	// ch is the right itself in a message queued inside this process (deliverLocal), which
	// carries no fd for it; never encoded.
	ch *sendChan
	// copyIn says the receiver copies this memory rather than mapping it (copiedIn); set by
	// checkMemory, never encoded.
	copyIn bool
}

// datagram is a decoded message as it travelled.
type datagram struct {
	bits    uint32
	id      int32
	bodyLen uint32
	bodyFD  int16
	reply   record
	descs   []record
	body    []byte // inline body (aliases the receive buffer)
	nfds    int
	// laneToken names the lane right a message uses as its destination; 0 on other channels.
	laneToken uint64
}

var errMalformed = errors.New("emu: malformed message")

func putRecord(b []byte, r *record) {
	b[0], b[1] = r.kind, r.typ
	if r.dealloc {
		b[2] = 1
	}
	if r.kind == kindMemory && r.parts > 1 {
		b[3] = r.parts - 1
	}
	binary.LittleEndian.PutUint16(b[4:], uint16(r.fd))
	binary.LittleEndian.PutUint16(b[6:], uint16(r.counterFD))
	binary.LittleEndian.PutUint32(b[8:], r.size)
	switch r.kind {
	case kindReceive:
		binary.LittleEndian.PutUint64(b[16:], r.token)
	case kindLane:
		binary.LittleEndian.PutUint64(b[16:], r.laneKey)
		binary.LittleEndian.PutUint64(b[24:], r.token)
	case kindSendLane:
		binary.LittleEndian.PutUint64(b[8:], r.laneKey)
		copy(b[16:32], r.id[:])
	default:
		copy(b[16:32], r.id[:])
	}
}

// encode appends the datagram (without a memfd body) to dst.
func (d *datagram) encode(dst []byte) []byte {
	n := wireFixedSize + len(d.descs)*wireRecordSize
	if d.bodyFD < 0 {
		n += len(d.body)
	}
	if d.laneToken != 0 {
		n += 8
	}
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	b := dst[start:]
	clear(b)
	le := binary.LittleEndian
	le.PutUint32(b[0:], wireMagic)
	le.PutUint16(b[4:], wireVersion)
	var flags uint16
	if d.bodyFD >= 0 {
		flags |= flagBodyInMemfd
	}
	if d.laneToken != 0 {
		flags |= flagLaneToken
		le.PutUint64(b[len(b)-8:], d.laneToken)
	}
	le.PutUint16(b[6:], flags)
	le.PutUint32(b[8:], d.bits)
	le.PutUint32(b[12:], uint32(d.id))
	le.PutUint32(b[16:], d.bodyLen)
	le.PutUint16(b[20:], uint16(len(d.descs)))
	le.PutUint16(b[22:], uint16(d.nfds))
	le.PutUint16(b[24:], uint16(d.bodyFD))
	putRecord(b[wireHeaderSize:], &d.reply)
	for i := range d.descs {
		putRecord(b[wireFixedSize+i*wireRecordSize:], &d.descs[i])
	}
	if d.bodyFD < 0 {
		copy(b[wireFixedSize+len(d.descs)*wireRecordSize:], d.body)
	}
	return dst
}

// decode parses and validates a datagram that arrived with nfds descriptors. Every fd index must
// be in range and used exactly once, and every fd must be used, so a hostile sender cannot make
// the receiver keep or double-close an fd.
func (d *datagram) decode(b []byte, nfds int) error {
	le := binary.LittleEndian
	if len(b) < wireFixedSize {
		return fmt.Errorf("%w: %d bytes", errMalformed, len(b))
	}
	if le.Uint32(b[0:]) != wireMagic || le.Uint16(b[4:]) != wireVersion {
		return fmt.Errorf("%w: bad magic or version", errMalformed)
	}
	flags := le.Uint16(b[6:])
	d.laneToken = 0
	if flags&flagLaneToken != 0 {
		if len(b) < wireFixedSize+8 {
			return fmt.Errorf("%w: %d bytes", errMalformed, len(b))
		}
		if d.laneToken = le.Uint64(b[len(b)-8:]); d.laneToken == 0 {
			return fmt.Errorf("%w: lane token 0", errMalformed)
		}
		b, flags = b[:len(b)-8], flags&^flagLaneToken
	}
	d.bits = le.Uint32(b[8:])
	d.id = int32(le.Uint32(b[12:]))
	d.bodyLen = le.Uint32(b[16:])
	ndesc := int(le.Uint16(b[20:]))
	d.nfds = int(le.Uint16(b[22:]))
	d.bodyFD = int16(le.Uint16(b[24:]))
	if d.nfds != nfds {
		return fmt.Errorf("%w: says %d fds, carried %d", errMalformed, d.nfds, nfds)
	}
	if ndesc > MaxDescriptors {
		return fmt.Errorf("%w: %d descriptors", errMalformed, ndesc)
	}
	fixed := wireFixedSize + ndesc*wireRecordSize
	var usedBuf [maxFDs]bool
	used := usedBuf[:nfds]
	useFD := func(i int16, need bool) error {
		if i < 0 {
			if need {
				return fmt.Errorf("%w: missing fd", errMalformed)
			}
			return nil
		}
		if int(i) >= nfds || used[i] {
			return fmt.Errorf("%w: fd index %d", errMalformed, i)
		}
		used[i] = true
		return nil
	}
	switch flags {
	case 0:
		if d.bodyFD != -1 || len(b) != fixed+int(d.bodyLen) {
			return fmt.Errorf("%w: body of %d bytes in %d", errMalformed, d.bodyLen, len(b))
		}
		d.body = b[fixed:]
	case flagBodyInMemfd:
		if len(b) != fixed || d.bodyLen <= inlineBodyMax {
			return fmt.Errorf("%w: memfd body", errMalformed)
		}
		if err := useFD(d.bodyFD, true); err != nil {
			return err
		}
		d.body = nil
	default:
		return fmt.Errorf("%w: flags %#x", errMalformed, flags)
	}
	if err := parseRecord(b[wireHeaderSize:], &d.reply, true, useFD); err != nil {
		return err
	}
	d.descs = d.descs[:0]
	for i := 0; i < ndesc; i++ {
		var r record
		if err := parseRecord(b[wireFixedSize+i*wireRecordSize:], &r, false, useFD); err != nil {
			return fmt.Errorf("descriptor %d: %w", i, err)
		}
		d.descs = append(d.descs, r)
	}
	for i, u := range used {
		if !u {
			return fmt.Errorf("%w: fd %d unused", errMalformed, i)
		}
	}
	return nil
}

func parseRecord(b []byte, r *record, isReply bool, useFD func(int16, bool) error) error {
	le := binary.LittleEndian
	r.kind, r.typ, r.dealloc, r.parts = b[0], b[1], b[2] != 0, 0
	r.fd = int16(le.Uint16(b[4:]))
	r.counterFD = int16(le.Uint16(b[6:]))
	r.size = le.Uint32(b[8:])
	switch r.kind {
	case kindNone:
		if !isReply {
			return fmt.Errorf("%w: empty descriptor", errMalformed)
		}
		if r.fd != -1 || r.counterFD != -1 {
			return fmt.Errorf("%w: fds on an empty record", errMalformed)
		}
	case kindPort:
		copy(r.id[:], b[16:32])
		switch r.typ {
		case typePortSend:
			if err := useFD(r.fd, true); err != nil {
				return err
			}
			if err := useFD(r.counterFD, true); err != nil {
				return err
			}
		case typePortSendOnce:
			if err := useFD(r.fd, true); err != nil {
				return err
			}
			if r.counterFD != -1 {
				return fmt.Errorf("%w: send-once right with a counter", errMalformed)
			}
		default:
			return fmt.Errorf("%w: right type %d", errMalformed, r.typ)
		}
	case kindMemory:
		if isReply || r.typ > 1 || r.counterFD != -1 {
			return fmt.Errorf("%w: memory record", errMalformed)
		}
		parts := int(b[3]) + 1
		if parts > maxMemParts || (parts > 1 && uint64(r.size) <= uint64(parts-1)*memPartSize(r.size, parts)) {
			return fmt.Errorf("%w: %d bytes in %d parts", errMalformed, r.size, parts)
		}
		r.parts = uint8(parts)
		if r.size == 0 && r.fd != -1 {
			return fmt.Errorf("%w: an fd for no memory", errMalformed)
		}
		if err := useFD(r.fd, r.size > 0); err != nil {
			return err
		}
		for i := int16(1); i < int16(r.parts); i++ {
			if err := useFD(r.fd+i, true); err != nil {
				return err
			}
		}
	case kindNoPort:
		badType := r.typ < typePortReceive || r.typ > typePortSendOnce
		if isReply || badType || r.fd != -1 || r.counterFD != -1 || (r.size != 0 && r.size != ^uint32(0)) {
			return fmt.Errorf("%w: null port record", errMalformed)
		}
	case kindReceive:
		if isReply || r.typ != typePortReceive || r.fd != -1 || r.counterFD != -1 {
			return fmt.Errorf("%w: receive record", errMalformed)
		}
		r.token = le.Uint64(b[16:])
	case kindLane:
		r.laneKey, r.token = le.Uint64(b[16:]), le.Uint64(b[24:])
		if r.typ != typePortSendOnce || r.counterFD != -1 || r.size != 0 || r.laneKey == 0 || r.token == 0 {
			return fmt.Errorf("%w: lane record", errMalformed)
		}
		if err := useFD(r.fd, false); err != nil {
			return err
		}
	case kindSendLane:
		r.laneKey, r.size = le.Uint64(b[8:]), 0
		copy(r.id[:], b[16:32])
		if r.typ != typePortSend || r.laneKey == 0 || (r.fd < 0) != (r.counterFD < 0) {
			return fmt.Errorf("%w: send lane record", errMalformed)
		}
		if r.fd >= 0 {
			for _, i := range []int16{r.fd, r.fd + 1, r.counterFD} {
				if err := useFD(i, true); err != nil {
					return err
				}
			}
		}
	default:
		return fmt.Errorf("%w: record kind %d", errMalformed, r.kind)
	}
	return nil
}
