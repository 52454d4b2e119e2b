package cfmessageport

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/machport/machport/mach"
)

// encodeInto lays the packet out in m as Encode documents, sizing the body once. It keeps every
// buffer of m, including the one mach.Send encodes the message into, which Encode drops by
// resetting the rest of the Message: a message sent again and again (see outMessages) then costs
// no allocation. m must not be a received message.
func (p *Packet) encodeInto(m *mach.Message, remote, local mach.Port) error {
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

// outMessages recycles the messages requests and replies are sent from, with their buffers: a
// fresh message costs an allocation for its body and another for the encoding mach.Send makes,
// each as large as an inline payload.
var outMessages = sync.Pool{New: func() any { return new(mach.Message) }}

func getOutMessage() *mach.Message { return outMessages.Get().(*mach.Message) }

// putOutMessage recycles m once it is sent (or its send failed and was cleaned up). Only an
// inline message comes back, with its buffers but not its ports: one that carried out-of-line
// memory may still refer to that memory inside mach.Message, where it cannot be let go, and
// saves little anyway (its buffers are small).
func putOutMessage(m *mach.Message) {
	if len(m.Descriptors) > 0 {
		return
	}
	m.Remote, m.Local, m.Voucher = mach.Port{}, mach.Port{}, mach.Port{}
	outMessages.Put(m)
}
