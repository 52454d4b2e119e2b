package mach

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	require.NoError(t, err)
	return b
}

// Golden vectors: the bytes the Darwin kernel reads for these messages.
func TestEncodeGolden(t *testing.T) {
	cases := []struct {
		name string
		msg  Message
		want string
	}{{
		name: "simple with body",
		msg: Message{Remote: Port{Name: 0x1103, Disposition: CopySend}, Local: Port{Name: 0x2203, Disposition: MakeSendOnce},
			ID: 0x63666d70, Body: []byte{1, 2, 3, 4, 5}},
		want: `13150000 20000000 03110000 03220000 00000000 706d6663
		       01020304 05000000`,
	}, {
		name: "one-way, empty",
		msg:  Message{Remote: Port{Name: 7, Disposition: CopySend}, ID: 1},
		want: `13000000 18000000 07000000 00000000 00000000 01000000`,
	}, {
		// The wire doc's worked check: deallocate=1, copy=1, type=1, size=0xAABBCCDD,
		// address=0x1122334455667788 is 88 77 66 55 44 33 22 11 01 01 00 01 DD CC BB AA,
		// and the descriptor starts at offset 28 (pack(4)).
		name: "out-of-line descriptor at offset 28",
		msg: Message{Remote: Port{Name: 0x1103, Disposition: CopySend}, ID: 9,
			Descriptors: []Descriptor{&OOLDescriptor{Address: 0x1122334455667788, Size: 0xAABBCCDD, Deallocate: true, Copy: VirtualCopy}},
			Body:        []byte{0xf8, 0xf4, 0xf2, 0xf0}},
		want: `13000080 30000000 03110000 00000000 00000000 09000000 01000000
		       88776655 44332211 010100 01 DDCCBBAA f8f4f2f0`,
	}, {
		name: "port descriptors",
		msg: Message{Remote: Port{Name: 0x1103, Disposition: CopySend}, ID: 2, Descriptors: []Descriptor{
			&PortDescriptor{Port: Port{Name: 0x2207, Disposition: MoveSend}},
			&PortDescriptor{Port: Port{Name: 0x3303, Disposition: MakeSendOnce}},
		}},
		want: `13000080 34000000 03110000 00000000 00000000 02000000 02000000
		       07220000 00000000 00001100 03330000 00000000 00001500`,
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.msg.Append(nil)
			require.NoError(t, err)
			require.Equal(t, hex.EncodeToString(mustHex(t, c.want)), hex.EncodeToString(got))
			require.Equal(t, len(got), c.msg.EncodedSize())
		})
	}
}

func TestRoundTrip(t *testing.T) {
	orig := &Message{
		Remote: Port{Name: 0x1103, Disposition: MoveSendOnce}, Local: Port{Name: 0x2203, Disposition: MakeSend},
		ID: -5,
		Descriptors: []Descriptor{
			&PortDescriptor{Port: Port{Name: 0x707, Disposition: CopySend}},
			&OOLDescriptor{Address: 0x7000, Size: 4097, Copy: PhysicalCopy},
		},
		Body: bytes.Repeat([]byte{0xab}, 12),
	}
	b, err := orig.Append([]byte("prefix"))
	require.NoError(t, err)
	require.Equal(t, "prefix", string(b[:6]))
	// Append a format-0 audit trailer as the kernel does.
	trailer := make([]byte, auditTrailerSize)
	le.PutUint32(trailer[4:], auditTrailerSize)
	le.PutUint32(trailer[8:], 77)
	le.PutUint32(trailer[12:], 501)
	le.PutUint32(trailer[20+4*5:], 4242)
	got, err := Decode(append(b[6:], trailer...))
	require.NoError(t, err)
	require.Equal(t, orig.Remote.Name, got.Remote.Name)
	require.Equal(t, MoveSendOnce, got.Remote.Disposition)
	require.Equal(t, MakeSend, got.Local.Disposition)
	require.Equal(t, int32(-5), got.ID)
	require.True(t, got.Complex)
	require.Len(t, got.Descriptors, 2)
	require.Equal(t, &PortDescriptor{Port: Port{Name: 0x707, Disposition: CopySend}}, got.Descriptors[0])
	ool := got.Descriptors[1].(*OOLDescriptor)
	require.Equal(t, uint64(0x7000), ool.Address)
	require.Equal(t, uint32(4097), ool.Size)
	require.Equal(t, orig.Body, got.Body)
	require.Equal(t, uint32(77), got.Trailer.Seqno)
	require.Equal(t, uint32(501), got.Trailer.Sender[0])
	require.Equal(t, 4242, got.Trailer.Audit.PID())
	require.False(t, got.Trailer.Audit.IsKernel())
}

func TestBodyPadding(t *testing.T) {
	for n := 0; n < 9; n++ {
		m := Message{Remote: Port{Name: 1, Disposition: CopySend}, Body: bytes.Repeat([]byte{0xff}, n)}
		b, err := m.Append(nil)
		require.NoError(t, err)
		require.Equal(t, headerSize+round4(n), len(b))
		require.Zero(t, len(b)%4)
		for _, pad := range b[headerSize+n:] {
			require.Zero(t, pad)
		}
	}
}

func TestEncodeLimits(t *testing.T) {
	m := Message{Remote: Port{Name: 1, Disposition: CopySend}, Body: make([]byte, MaxInlineSize)}
	_, err := m.Append(nil)
	require.ErrorIs(t, err, ErrMessageTooLarge)
	m = Message{Remote: Port{Name: 1, Disposition: CopySend}, Body: make([]byte, MaxInlineSize-headerSize)}
	_, err = m.Append(nil)
	require.NoError(t, err)
}

func TestDecodeErrors(t *testing.T) {
	header := func(bits, size uint32) []byte {
		b := make([]byte, headerSize)
		le.PutUint32(b[offBits:], bits)
		le.PutUint32(b[offSize:], size)
		return b
	}
	complexWith := func(count uint32, descs ...[]byte) []byte {
		b := header(uint32(BitsComplex), 0)
		b = le.AppendUint32(b, count)
		for _, d := range descs {
			b = append(b, d...)
		}
		le.PutUint32(b[offSize:], uint32(len(b)))
		return b
	}
	portDesc := make([]byte, portDescriptorSize)
	putPortDescriptor(portDesc, 5, MoveSend)
	badType := make([]byte, oolDescriptorSize)
	badType[descriptorTypeByte] = 9
	truncatedOOL := make([]byte, portDescriptorSize) // an OOL type in a 12-byte slot
	truncatedOOL[descriptorTypeByte] = byte(OOLDescriptorType)
	badTrailer := append(header(0, headerSize), 0, 0, 0, 0, 200, 0, 0, 0)
	cases := map[string][]byte{
		"empty":                     nil,
		"short header":              make([]byte, headerSize-1),
		"size below header":         header(0, 20),
		"size beyond buffer":        header(0, 100),
		"complex without count":     header(uint32(BitsComplex), headerSize),
		"count beyond size":         complexWith(3, portDesc),
		"huge count":                complexWith(0xffffffff, portDesc),
		"unknown descriptor type":   complexWith(1, badType),
		"truncated ool descriptor":  complexWith(1, truncatedOOL),
		"trailer size beyond bytes": badTrailer,
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(b)
			require.ErrorIs(t, err, ErrInvalidMessage)
		})
	}
	// A well-formed complex message decodes.
	m, err := Decode(complexWith(1, portDesc))
	require.NoError(t, err)
	require.Len(t, m.Descriptors, 1)
}

func TestDecodeOtherDescriptorKept(t *testing.T) {
	b := make([]byte, baseSize+otherDescriptorSize)
	le.PutUint32(b[offBits:], uint32(BitsComplex))
	le.PutUint32(b[offSize:], uint32(len(b)))
	le.PutUint32(b[offCount:], 1)
	b[baseSize+descriptorTypeByte] = byte(GuardedPortDescriptorType)
	m, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, GuardedPortDescriptorType, m.Descriptors[0].Type())
	require.Error(t, acceptAdoptable(m))
	// Re-encoding passes the raw bytes through.
	again, err := m.Append(nil)
	require.NoError(t, err)
	require.Equal(t, b, again)
}

func FuzzDecode(f *testing.F) {
	seed := []Message{
		{Remote: Port{Name: 1, Disposition: CopySend}, ID: 3, Body: []byte("hello")},
		{Remote: Port{Name: 1, Disposition: CopySend}, Descriptors: []Descriptor{
			&PortDescriptor{Port: Port{Name: 2, Disposition: MoveSend}},
			&OOLDescriptor{Address: 0x1000, Size: 10},
		}},
	}
	for _, m := range seed {
		b, err := m.Append(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(append(b, make([]byte, auditTrailerSize)...))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if int(m.Size) > len(b) || m.Size < headerSize {
			t.Fatalf("size %d out of %d bytes", m.Size, len(b))
		}
		// Whatever decodes re-encodes to a message of the same size.
		if again, err := m.Append(nil); err == nil && len(again) != int(m.Size) && m.Size%4 == 0 {
			t.Fatalf("re-encoded %d bytes, decoded size %d", len(again), m.Size)
		}
	})
}
