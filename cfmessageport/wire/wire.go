// Package wire is the CFMessagePort wire format: how CoreFoundation lays a request or a reply out
// in a Mach message on 64-bit macOS (10.10 and later), byte for byte, and the rules its receivers
// drop a message by. Package cfmessageport serves and calls services with it; use this package
// to speak the protocol over mach directly, or to look at messages.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/machport/machport/mach"
)

// Wire constants of the 64-bit CFMessagePort protocol (macOS 10.10 and later).
const (
	// Magic starts the inner header, in the sender's byte order; receivers accept both orders.
	Magic uint32 = 0xF0F2F4F8
	// MsgID is the msgh_id CF has sent since macOS 10.14 ('cfmp'); receivers ignore msgh_id.
	MsgID int32 = 0x63666d70
	// InlineLimit is the largest payload that travels inline; larger payloads go out-of-line.
	InlineLimit = 4000
	// MaxPayload is the largest payload CF sends or accepts (1.5 GiB).
	MaxPayload = 0x60000000
)

// HeaderSize is MSGP_SIZE, the smallest valid message (60 bytes): the 28-byte base, one
// out-of-line descriptor slot (present, zero, in inline messages too) and the 16-byte inner
// header. An inline message is at most HeaderSize + InlineLimit bytes.
const HeaderSize = 60

// HeaderSize is the inner header's offset and its 16 bytes: a build fails if they differ.
const _ = uint(HeaderSize-(innerOffset+16)) + uint(innerOffset+16-HeaderSize)

// Layout, in bytes from the start of the Mach message.
const (
	innerOffset = 44         // where the inner header starts for every 64-bit sender
	fixedSize   = HeaderSize // MSGP_SIZE
	// In mach.Message terms: a simple message's Body starts at offset 24, so the inner header is
	// at 20 in it; a complex message's Body starts after the descriptor, at the inner header.
	simpleInner = innerOffset - 24
)

// ErrCorrupt marks a message that CF's receivers would drop as corrupt. The *CorruptError that
// wraps it says which rule the message broke.
var ErrCorrupt = errors.New("cfmessageport: corrupt message")

// ErrTooLarge reports a payload over MaxPayload.
var ErrTooLarge = errors.New("cfmessageport: payload larger than 1.5 GiB")

// CorruptError says which of CF's validation rules a received message broke.
type CorruptError struct {
	Rule string
}

func (e *CorruptError) Error() string { return "cfmessageport: corrupt message: " + e.Rule }

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

func corrupt(format string, args ...any) error {
	return &CorruptError{Rule: fmt.Sprintf(format, args...)}
}

// Packet is the CFMessagePort content of a request or a reply: the inner header and the payload.
type Packet struct {
	// MsgID is the caller's message id (any int32); a reply echoes the request's.
	MsgID int32
	// ConvID is the conversation id: positive in a request, the request's negated in a reply.
	ConvID int32
	// Data is the payload. In a parsed packet it is empty, never nil, for both "no data" and
	// empty data; it may be a view of out-of-line memory owned by the message.
	Data []byte
	// NoData sends byteslen -1 ("no data", what a handler returning NULL gives) instead of the
	// length of an empty Data. Set when parsing a packet that carried -1.
	NoData bool
}

func round8(n int) int { return (n + 7) &^ 7 }

// Inline reports whether a payload of n bytes travels inline.
func Inline(n int) bool { return n <= InlineLimit }

// Encode fills m, ready to send to remote with an optional reply right local, as CF lays the
// message out: inline payloads (up to 4000 bytes) after a zeroed descriptor slot, padded to 8
// bytes; larger payloads in one out-of-line descriptor (virtual copy) of p.Data with the inner
// header inline. The descriptor does not deallocate, as in CF's requests; CF's server sends
// out-of-line replies with deallocate set, which Server does by sending them from a region.
// m's earlier content is replaced; its buffers are reused.
func (p *Packet) Encode(m *mach.Message, remote, local mach.Port) error {
	*m = mach.Message{Body: m.Body[:0], Descriptors: m.Descriptors[:0]}
	return p.EncodeInto(m, remote, local)
}

// EncodeInto lays the packet out in m as Encode does, sizing the body once. It keeps every
// buffer of m, including the one mach.Send encodes the message into, which Encode drops by
// resetting the rest of the Message: a message sent again and again (see outMessages) then costs
// no allocation. m must not be a received message.
func (p *Packet) EncodeInto(m *mach.Message, remote, local mach.Port) error {
	n := len(p.Data)
	if n > MaxPayload {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	byteslen := int32(n)
	if p.NoData && n == 0 {
		byteslen = -1
	}
	m.Remote, m.Local, m.Voucher, m.ID, m.Complex = remote, local, mach.Port{}, MsgID, false
	m.Trailer, m.Size = mach.Trailer{}, 0
	clear(m.Descriptors)
	m.Descriptors = m.Descriptors[:0]
	var inner []byte
	if Inline(n) {
		size := simpleInner + 16 + round8(n)
		m.Body = slices.Grow(m.Body[:0], size)[:size]
		clear(m.Body[:simpleInner]) // descriptor count and slot: zero
		inner = m.Body[simpleInner:]
		copy(inner[16:], p.Data)
		clear(inner[16+n:]) // padding
	} else {
		m.Descriptors = append(m.Descriptors, &mach.OOLDescriptor{Data: p.Data, Copy: mach.VirtualCopy})
		m.Body = slices.Grow(m.Body[:0], 16)[:16]
		inner = m.Body
	}
	binary.LittleEndian.PutUint32(inner[0:], Magic)
	binary.LittleEndian.PutUint32(inner[4:], uint32(p.MsgID))
	binary.LittleEndian.PutUint32(inner[8:], uint32(p.ConvID))
	binary.LittleEndian.PutUint32(inner[12:], uint32(byteslen))
	return nil
}

// Decode validates a received message as CF's receivers do and returns its packet. A reply must
// carry a negative conversation id, a request a positive one. A message that breaks a rule gives
// a *CorruptError (errors.Is ErrCorrupt); the caller then drops it by destroying it, which is
// what CF does: no reply is sent, and a carried reply right is destroyed.
//
// For an out-of-line payload, Data is a view of the message's out-of-line memory: valid until
// the message is destroyed or received into again.
func Decode(m *mach.Message, reply bool) (Packet, error) {
	size := int(m.Size)
	if size < fixedSize {
		return Packet{}, corrupt("%d bytes, fewer than the %d of a header", size, fixedSize)
	}
	// CF's wayTooBig applies to complex messages as much as to simple ones: a complex message
	// whose msgh_size claims more than 4060 bytes is dropped too (CFMessagePort.c,
	// __CFMessagePortPerform and __CFMessagePortReplyCallBack).
	if size > fixedSize+InlineLimit {
		return Packet{}, corrupt("%d bytes, more than the %d of an inline message", size, fixedSize+InlineLimit)
	}
	var inner []byte
	var ool *mach.OOLDescriptor
	if m.Complex || len(m.Descriptors) > 0 {
		if len(m.Descriptors) != 1 {
			return Packet{}, corrupt("a complex message with %d descriptors, not 1", len(m.Descriptors))
		}
		d, ok := m.Descriptors[0].(*mach.OOLDescriptor)
		if !ok {
			return Packet{}, corrupt("its descriptor is %v, not out-of-line memory", m.Descriptors[0].Type())
		}
		ool = d
		inner = m.Body
	} else {
		if len(m.Body) < simpleInner {
			return Packet{}, corrupt("%d-byte body", len(m.Body))
		}
		inner = m.Body[simpleInner:]
	}
	if len(inner) < 16 {
		return Packet{}, corrupt("the inner header is cut short (%d bytes)", len(inner))
	}
	le, be := binary.LittleEndian, binary.BigEndian
	if le.Uint32(inner) != Magic && be.Uint32(inner) != Magic {
		return Packet{}, corrupt("magic %#08x", le.Uint32(inner))
	}
	p := Packet{
		MsgID:  int32(le.Uint32(inner[4:])),
		ConvID: int32(le.Uint32(inner[8:])),
	}
	byteslen := int64(int32(le.Uint32(inner[12:])))
	switch {
	case byteslen < -1 || byteslen > MaxPayload:
		return Packet{}, corrupt("byteslen %d", byteslen)
	case ool != nil && int64(ool.Size) != byteslen:
		return Packet{}, corrupt("byteslen %d with %d bytes out-of-line", byteslen, ool.Size)
	case ool == nil && int64(size-fixedSize) < byteslen:
		return Packet{}, corrupt("byteslen %d with %d bytes inline", byteslen, size-fixedSize)
	case reply && p.ConvID >= 0:
		return Packet{}, corrupt("a reply with conversation id %d", p.ConvID)
	case !reply && p.ConvID <= 0:
		return Packet{}, corrupt("a request with conversation id %d", p.ConvID)
	}
	if byteslen < 0 {
		p.NoData, byteslen = true, 0
	}
	switch {
	case ool != nil && byteslen > 0:
		if int64(len(ool.Data)) < byteslen {
			return Packet{}, corrupt("out-of-line memory of %d bytes is not mapped", byteslen)
		}
		p.Data = ool.Data[:byteslen]
	case ool == nil:
		p.Data = inner[16 : 16+byteslen]
	default:
		p.Data = []byte{}
	}
	if p.Data == nil {
		p.Data = []byte{}
	}
	return p, nil
}
