package wire_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

const (
	servicePort = mach.Name(0x1103)
	replyPort   = mach.Name(0x1207)
	replyRight  = mach.Name(0x2303)
)

var (
	requestRemote = mach.Port{Name: servicePort, Disposition: mach.CopySend}
	requestLocal  = mach.Port{Name: replyPort, Disposition: mach.MakeSendOnce}
	replyRemote   = mach.Port{Name: replyRight, Disposition: mach.MoveSendOnce}
)

// unhex reads a byte vector written as in the wire doc: hex with spaces and newlines.
func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	require.NoError(t, err)
	return b
}

// Golden byte vectors, written field by field from cfmessageport-wire.md §2.
func TestEncodeGolden(t *testing.T) {
	cases := []struct {
		name          string
		packet        wire.Packet
		remote, local mach.Port
		want          string
	}{
		{name: "inline request", packet: wire.Packet{MsgID: 7, ConvID: 1, Data: []byte("hello")},
			remote: requestRemote, local: requestLocal, want: `
			13150000 44000000 03110000 07120000 00000000 706d6663
			00000000 00000000 00000000 00000000 00000000
			f8f4f2f0 07000000 01000000 05000000
			68656c6c 6f000000`},
		{name: "one-way request", packet: wire.Packet{MsgID: -2, ConvID: 3, Data: []byte("12345678")},
			remote: requestRemote, want: `
			13000000 44000000 03110000 00000000 00000000 706d6663
			00000000 00000000 00000000 00000000 00000000
			f8f4f2f0 feffffff 03000000 08000000
			31323334 35363738`},
		{name: "empty request", packet: wire.Packet{MsgID: 1, ConvID: 2, Data: []byte{}},
			remote: requestRemote, local: requestLocal, want: `
			13150000 3c000000 03110000 07120000 00000000 706d6663
			00000000 00000000 00000000 00000000 00000000
			f8f4f2f0 01000000 02000000 00000000`},
		{name: "reply with no data", packet: wire.Packet{MsgID: 7, ConvID: -1, NoData: true},
			remote: replyRemote, want: `
			12000000 3c000000 03230000 00000000 00000000 706d6663
			00000000 00000000 00000000 00000000 00000000
			f8f4f2f0 07000000 ffffffff ffffffff`},
		{name: "inline reply", packet: wire.Packet{MsgID: 7, ConvID: -1, Data: []byte("world!!!?")},
			remote: replyRemote, want: `
			12000000 4c000000 03230000 00000000 00000000 706d6663
			00000000 00000000 00000000 00000000 00000000
			f8f4f2f0 07000000 ffffffff 09000000
			776f726c 64212121 3f000000 00000000`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m mach.Message
			require.NoError(t, tc.packet.Encode(&m, tc.remote, tc.local))
			got, err := m.Append(nil)
			require.NoError(t, err)
			require.Equal(t, hex.EncodeToString(unhex(t, tc.want)), hex.EncodeToString(got))
		})
	}
}

// 4000 bytes is the last inline size; 4001 goes out-of-line with the inner header inline.
func TestEncodeInlineLimit(t *testing.T) {
	var m mach.Message
	p := wire.Packet{MsgID: 9, ConvID: 4, Data: bytes.Repeat([]byte{0xab}, 4000)}
	require.NoError(t, p.Encode(&m, requestRemote, requestLocal))
	b, err := m.Append(nil)
	require.NoError(t, err)
	require.Len(t, b, 4060)
	require.Equal(t, unhex(t, "13150000 dc0f0000"), b[:8])
	require.Equal(t, unhex(t, "f8f4f2f0 09000000 04000000 a00f0000"), b[44:60])
	require.Equal(t, p.Data, b[60:])

	p.Data = bytes.Repeat([]byte{0xcd}, 4001)
	require.NoError(t, p.Encode(&m, requestRemote, requestLocal))
	b, err = m.Append(nil)
	require.NoError(t, err)
	require.Len(t, b, 60)
	require.Equal(t, unhex(t, "13150080 3c000000 03110000 07120000 00000000 706d6663 01000000"), b[:28])
	// The descriptor: the payload's address, deallocate 0, copy VIRTUAL, type OOL, size 4001.
	require.NotZero(t, binary.LittleEndian.Uint64(b[28:]))
	require.Equal(t, unhex(t, "00 01 00 01 a10f0000"), b[36:44])
	require.Equal(t, unhex(t, "f8f4f2f0 09000000 04000000 a10f0000"), b[44:60])
}

// decodeBytes decodes raw message bytes as Receive would deliver them (out-of-line data
// supplied separately, as the kernel maps it).
func decodeBytes(t *testing.T, b []byte, ool []byte) *mach.Message {
	t.Helper()
	m, err := mach.Decode(b)
	require.NoError(t, err)
	if ool != nil {
		m.Descriptors[0].(*mach.OOLDescriptor).Data = ool
	}
	return m
}

func TestDecodeRoundTripsAndBothMagicOrders(t *testing.T) {
	for _, size := range []int{0, 1, 7, 8, 4000, 4001, 70000} {
		data := bytes.Repeat([]byte{0x5a}, size)
		for _, reply := range []bool{false, true} {
			p := wire.Packet{MsgID: -9, ConvID: 12, Data: data}
			remote, local := requestRemote, requestLocal
			if reply {
				p.ConvID, remote, local = -12, replyRemote, mach.Port{}
			}
			var m mach.Message
			require.NoError(t, p.Encode(&m, remote, local))
			b, err := m.Append(nil)
			require.NoError(t, err)
			var ool []byte
			if size > wire.InlineLimit {
				ool = data
			}
			got, err := wire.Decode(decodeBytes(t, b, ool), reply)
			require.NoError(t, err, "size %d reply %v", size, reply)
			require.Equal(t, p.MsgID, got.MsgID)
			require.Equal(t, p.ConvID, got.ConvID)
			require.Equal(t, data, got.Data)
			require.NotNil(t, got.Data)

			// A big-endian sender's magic is accepted too.
			binary.BigEndian.PutUint32(b[44:], wire.Magic)
			_, err = wire.Decode(decodeBytes(t, b, ool), reply)
			require.NoError(t, err)
		}
	}
}

func TestDecodeNoDataIsEmpty(t *testing.T) {
	b := unhex(t, `12000000 3c000000 03230000 00000000 00000000 706d6663
		00000000 00000000 00000000 00000000 00000000
		f8f4f2f0 07000000 ffffffff ffffffff`)
	p, err := wire.Decode(decodeBytes(t, b, nil), true)
	require.NoError(t, err)
	require.True(t, p.NoData)
	require.NotNil(t, p.Data)
	require.Empty(t, p.Data)
	require.Equal(t, int32(-1), p.ConvID)
}

// One case per rule of wire doc §4, each applied to an otherwise valid message.
func TestDecodeDropRules(t *testing.T) {
	valid := func() []byte {
		return unhex(t, `13150000 44000000 03110000 07120000 00000000 706d6663
			00000000 00000000 00000000 00000000 00000000
			f8f4f2f0 07000000 01000000 05000000
			68656c6c 6f000000`)
	}
	put := func(b []byte, off int, v uint32) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	cases := []struct {
		name  string
		msg   func() []byte
		reply bool
		rule  string
	}{
		{name: "too small", msg: func() []byte {
			return unhex(t, "12000000 18000000 03230000 00000000 00000000 47000000") // a bare send-once notification
		}, reply: true, rule: "fewer than"},
		{name: "bad magic", msg: func() []byte { return put(valid(), 44, 0xf1f2f3f4) }, rule: "magic"},
		{name: "complex without descriptors", msg: func() []byte {
			b := put(valid(), 0, 0x80001513)
			return put(b, 24, 0) // count 0
		}, rule: "with 0 descriptors"},
		{name: "inline over 4060 bytes", msg: func() []byte {
			b := append(valid()[:60], make([]byte, 4008)...)
			put(b, 56, 4008)
			return put(b, 4, uint32(len(b)))
		}, rule: "more than the 4060"},
		{name: "byteslen below -1", msg: func() []byte { return put(valid(), 56, 0xfffffffe) }, rule: "byteslen -2"},
		{name: "byteslen over 1.5 GiB", msg: func() []byte { return put(valid(), 56, 0x60000001) }, rule: "byteslen"},
		{name: "byteslen past the inline bytes", msg: func() []byte { return put(valid(), 56, 9) }, rule: "inline"},
		{name: "request with convid 0", msg: func() []byte { return put(valid(), 52, 0) }, rule: "conversation id 0"},
		{name: "request with negative convid", msg: func() []byte { return put(valid(), 52, 0xffffffff) }, rule: "conversation id -1"},
		{name: "reply with positive convid", msg: valid, reply: true, rule: "a reply with conversation id 1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mach.Decode(tc.msg())
			if err != nil {
				t.Fatalf("the mutated message does not even decode as Mach: %v", err)
			}
			_, err = wire.Decode(m, tc.reply)
			require.ErrorIs(t, err, wire.ErrCorrupt)
			var ce *wire.CorruptError
			require.ErrorAs(t, err, &ce)
			require.Contains(t, ce.Rule, tc.rule)
		})
	}
	// Out-of-line rules: descriptor count, descriptor type, size against byteslen.
	ool := wire.Packet{MsgID: 1, ConvID: 1, Data: make([]byte, 5000)}
	var m mach.Message
	require.NoError(t, ool.Encode(&m, requestRemote, requestLocal))
	m.Size = uint32(m.EncodedSize())
	// CF's wayTooBig is not for simple messages only: a complex message whose msgh_size is over
	// 4060 is dropped too, however valid the rest of it.
	big := m
	big.Body = append(slices.Clone(m.Body), make([]byte, 4008)...)
	big.Descriptors = []mach.Descriptor{&mach.OOLDescriptor{Data: ool.Data, Size: uint32(len(ool.Data))}}
	big.Size = uint32(wire.HeaderSize + wire.InlineLimit + 8)
	_, err := wire.Decode(&big, false)
	require.ErrorContains(t, err, "4068 bytes, more than the 4060")
	big.Size = uint32(wire.HeaderSize + wire.InlineLimit)
	_, err = wire.Decode(&big, false)
	require.NoError(t, err, "4060 bytes is not too big")
	m.Descriptors[0].(*mach.OOLDescriptor).Size = 4999
	_, err = wire.Decode(&m, false)
	require.ErrorContains(t, err, "byteslen 5000 with 4999 bytes out-of-line")
	m.Descriptors = append(m.Descriptors, &mach.OOLDescriptor{})
	_, err = wire.Decode(&m, false)
	require.ErrorContains(t, err, "2 descriptors")
	m.Descriptors = []mach.Descriptor{&mach.PortDescriptor{}}
	_, err = wire.Decode(&m, false)
	require.ErrorContains(t, err, "not out-of-line memory")
	// byteslen over 1.5 GiB, consistent with the descriptor's size.
	m.Descriptors = []mach.Descriptor{&mach.OOLDescriptor{Size: wire.MaxPayload + 1}}
	binary.LittleEndian.PutUint32(m.Body[12:], wire.MaxPayload+1)
	_, err = wire.Decode(&m, false)
	require.ErrorContains(t, err, "byteslen 1610612737")
}

func FuzzDecode(f *testing.F) {
	var m mach.Message
	for _, p := range []wire.Packet{{MsgID: 1, ConvID: 1, Data: []byte("hello")}, {ConvID: -1, NoData: true}, {ConvID: 2, Data: make([]byte, 4001)}} {
		_ = p.Encode(&m, requestRemote, requestLocal)
		b, _ := m.Append(nil)
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, reply bool) {
		m, err := mach.Decode(b)
		if err != nil {
			return
		}
		p, err := wire.Decode(m, reply)
		if err != nil {
			require.ErrorIs(t, err, wire.ErrCorrupt)
			return
		}
		require.NotNil(t, p.Data)
		require.LessOrEqual(t, len(p.Data), wire.MaxPayload)
		if reply {
			require.Negative(t, p.ConvID)
		} else {
			require.Positive(t, p.ConvID)
		}
	})
}
