package mach

import (
	"encoding/binary"
	"math/big"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/abitest"
	"github.com/stretchr/testify/require"
)

// readBits reads a field of width bits at bit offset off from little-endian bytes.
func readBits(b []byte, off, width int) uint64 {
	var v uint64
	for i := 0; i < width; i++ {
		bit := off + i
		if b[bit/8]>>(bit%8)&1 != 0 {
			v |= 1 << i
		}
	}
	return v
}

// writeBits is the inverse of readBits.
func writeBits(b []byte, off, width int, v uint64) {
	for i := 0; i < width; i++ {
		bit := off + i
		if v>>i&1 != 0 {
			b[bit/8] |= 1 << (bit % 8)
		} else {
			b[bit/8] &^= 1 << (bit % 8)
		}
	}
}

// layout returns one struct's SDK layout on a target.
func layout(t *testing.T, target, name string) *abitest.Layout {
	t.Helper()
	facts, err := abitest.Load()
	require.NoError(t, err)
	l := facts.Layouts[target][name]
	require.NotNil(t, l, "%s: no layout for %s", target, name)
	return l
}

// checkEncoded asserts that every field the SDK lists for a struct holds the expected value in
// the encoded bytes, and that the encoder wrote exactly the struct's size. A field missing from
// want fails the test, so a struct that grows a field is noticed.
func checkEncoded(t *testing.T, target, name string, encoded []byte, want map[string]uint64) {
	t.Helper()
	l := layout(t, target, name)
	require.Len(t, encoded, l.Size, "%s %s: encoded size", target, name)
	for _, f := range l.Fields {
		w, ok := want[f.Name]
		require.True(t, ok, "%s %s: field %s is not covered by the test", target, name, f.Name)
		off, width := f.Bits()
		if width > 64 {
			continue // arrays are checked element by element by the caller
		}
		require.Equal(t, w, readBits(encoded, off, width), "%s %s.%s (bit %d, width %d)", target, name, f.Name, off, width)
	}
}

func TestABIHeaderAndBody(t *testing.T) {
	for _, target := range abitest.Targets {
		m := &Message{
			Remote:  Port{Name: 0x11223344, Disposition: CopySend},
			Local:   Port{Name: 0x55667788, Disposition: MakeSendOnce},
			Voucher: Port{Name: 0x0a0b0c0d, Disposition: MoveSend},
			ID:      -0x1234567,
			Descriptors: []Descriptor{
				&PortDescriptor{Port: Port{Name: 0xdeadbeef, Disposition: MoveReceive}},
			},
		}
		b, err := m.Append(nil)
		require.NoError(t, err)
		checkEncoded(t, target, "mach_msg_header_t", b[:headerSize], map[string]uint64{
			"msgh_bits":         uint64(0x80000000 | 17<<16 | 21<<8 | 19),
			"msgh_size":         uint64(baseSize + portDescriptorSize),
			"msgh_remote_port":  0x11223344,
			"msgh_local_port":   0x55667788,
			"msgh_voucher_port": 0x0a0b0c0d,
			"msgh_id":           uint64(uint32(0xfedcba99)),
		})
		checkEncoded(t, target, "mach_msg_body_t", b[headerSize:baseSize], map[string]uint64{"msgh_descriptor_count": 1})
		base := layout(t, target, "mach_msg_base_t")
		require.Equal(t, baseSize, base.Size)
		require.Equal(t, headerSize, base.FlatField["body"])
	}
}

func TestABIPortDescriptor(t *testing.T) {
	for _, target := range abitest.Targets {
		b := make([]byte, portDescriptorSize)
		putPortDescriptor(b, 0x01020304, MakeSendOnce)
		checkEncoded(t, target, "mach_msg_port_descriptor_t", b, map[string]uint64{
			"name": 0x01020304, "pad1": 0, "pad2": 0, "disposition": uint64(MakeSendOnce), "type": uint64(PortDescriptorType),
		})
	}
}

func TestABIOOLDescriptor(t *testing.T) {
	for _, target := range abitest.Targets {
		for _, dealloc := range []bool{false, true} {
			b := make([]byte, oolDescriptorSize)
			putOOLDescriptor(b, 0x1122334455667788, 0xAABBCCDD, dealloc, VirtualCopy, OOLDescriptorType)
			d := uint64(0)
			if dealloc {
				d = 1
			}
			checkEncoded(t, target, "mach_msg_ool_descriptor_t", b, map[string]uint64{
				"address": 0x1122334455667788, "deallocate": d, "copy": uint64(VirtualCopy), "pad1": 0,
				"type": uint64(OOLDescriptorType), "size": 0xAABBCCDD,
			})
		}
		// The 64-bit descriptor the kernel writes on receive has the same layout.
		require.Equal(t, oolDescriptorSize, layout(t, target, "mach_msg_ool_descriptor64_t").Size)
		for _, other := range []string{"mach_msg_ool_ports_descriptor_t", "mach_msg_guarded_port_descriptor_t"} {
			l := layout(t, target, other)
			require.Equal(t, otherDescriptorSize, l.Size, other)
			for _, f := range l.Fields {
				if f.Name == "type" {
					off, width := f.Bits()
					require.Equal(t, descriptorTypeByte*8, off, other)
					require.Equal(t, 8, width, other)
				}
			}
		}
	}
}

// The decoder reads the audit trailer where the SDK puts each field.
func TestABIAuditTrailer(t *testing.T) {
	for _, target := range abitest.Targets {
		l := layout(t, target, "mach_msg_audit_trailer_t")
		require.Equal(t, auditTrailerSize, l.Size)
		b := make([]byte, l.Size)
		vals := map[string]uint64{"msgh_trailer_type": 0, "msgh_trailer_size": uint64(l.Size), "msgh_seqno": 0x5eadbeef}
		for _, f := range l.Fields {
			off, width := f.Bits()
			switch f.Name {
			case "msgh_sender", "msgh_audit":
				for i := 0; i < width/32; i++ {
					writeBits(b, off+32*i, 32, uint64(0x1000*(f.Offset+1)+i))
				}
			default:
				v, ok := vals[f.Name]
				require.True(t, ok, "field %s not covered", f.Name)
				writeBits(b, off, width, v)
			}
		}
		var m Message
		require.NoError(t, m.decodeTrailer(b))
		require.Equal(t, uint32(l.Size), m.Trailer.Size)
		require.Equal(t, uint32(0x5eadbeef), m.Trailer.Seqno)
		sender := l.FlatField["msgh_sender"]
		require.Equal(t, SecurityToken{uint32(0x1000 * (sender + 1)), uint32(0x1000*(sender+1) + 1)}, m.Trailer.Sender)
		audit := l.FlatField["msgh_audit"]
		for i := range m.Trailer.Audit {
			require.Equal(t, uint32(0x1000*(audit+1)+i), m.Trailer.Audit[i], "audit val[%d]", i)
		}
		require.Equal(t, maxTrailerSize, layout(t, target, "mach_msg_max_trailer_t").Size)
		require.Equal(t, minTrailerSize, layout(t, target, "mach_msg_trailer_t").Size)
	}
}

func TestABIPortOptions(t *testing.T) {
	for _, target := range abitest.Targets {
		l := layout(t, target, "mach_port_options_t")
		require.Equal(t, portOptionsSize, l.Size)
		var b [portOptionsSize]byte
		portOptions{flags: 0x8badf00d, queueLimit: 0x0c0ffee0, context: 42}.encode(&b)
		require.Equal(t, uint64(0x8badf00d), readBits(b[:], 8*l.FlatField["flags"], 32))
		require.Equal(t, uint64(0x0c0ffee0), readBits(b[:], 8*l.FlatField["mpl.mpl_qlimit"], 32))
		for i := l.FlatField["reserved"]; i < l.Size; i++ {
			require.Zero(t, b[i], "reserved byte %d", i)
		}
		require.Equal(t, 4, layout(t, target, "mach_port_limits_t").Size)
		require.Equal(t, len([abi.MACH_PORT_LIMITS_INFO_COUNT]int32{})*4, layout(t, target, "mach_port_limits_t").Size)
	}
}

func TestABIPortStatus(t *testing.T) {
	for _, target := range abitest.Targets {
		l := layout(t, target, "mach_port_status_t")
		require.Equal(t, portStatusWords*4, l.Size)
		var w [portStatusWords]int32
		for _, f := range l.Fields {
			require.Equal(t, 4, f.Size, f.Name)
			w[f.Offset/4] = int32(f.Offset/4 + 100)
		}
		s := decodePortStatus(w)
		byName := map[string]uint32{
			"mps_seqno": s.Seqno, "mps_mscount": s.MakeSendCount,
			"mps_qlimit": s.QueueLimit, "mps_msgcount": s.MessageCount, "mps_sorights": s.SendOnceCount,
			"mps_flags": s.Flags,
		}
		for _, f := range l.Fields {
			switch f.Name {
			case "mps_pset", "mps_srights", "mps_pdrequest", "mps_nsrequest":
				continue // booleans: checked below by position
			}
			require.Equal(t, uint32(f.Offset/4+100), byName[f.Name], f.Name)
		}
		// Booleans decode from their own words.
		for _, f := range l.Fields {
			var w2 [portStatusWords]int32
			w2[f.Offset/4] = 1
			s2 := decodePortStatus(w2)
			switch f.Name {
			case "mps_pset":
				require.True(t, s2.InPortSet)
			case "mps_srights":
				require.True(t, s2.SendRights)
			case "mps_pdrequest":
				require.True(t, s2.PortDestroyedRequested)
			case "mps_nsrequest":
				require.True(t, s2.NoSendersRequested)
			}
		}
	}
}

// The notification sizes ParseNotification checks are the SDK's (the message part is everything
// before the trailer field).
func TestABINotificationSizes(t *testing.T) {
	for _, target := range abitest.Targets {
		for name, want := range map[string]uint32{
			"mach_no_senders_notification_t":     notifyWithFieldSize,
			"mach_dead_name_notification_t":      notifyWithFieldSize,
			"mach_port_deleted_notification_t":   notifyWithFieldSize,
			"mach_send_once_notification_t":      notifySendOnceSize,
			"mach_port_destroyed_notification_t": notifyPortDestroyedSz,
		} {
			l := layout(t, target, name)
			require.Equal(t, int(want), l.FlatField["trailer"], name)
			if ndr, ok := l.FlatField["NDR"]; ok {
				require.Equal(t, headerSize, ndr, name)
				require.Equal(t, ndrSize, layout(t, target, "NDR_record_t").Size)
			}
		}
	}
}

// Values the code computes from C macros equal what clang computed from the SDK.
func TestABIDerivedConstants(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	cases := map[string]uint64{
		"MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, 0)":                                                                      uint64(MakeBits(CopySend, 0, 0, false)),
		"MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND)":                                                uint64(MakeBits(CopySend, MakeSend, 0, false)),
		"MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE)":                                           uint64(MakeBits(CopySend, MakeSendOnce, 0, false)),
		"MACH_MSGH_BITS(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE) | MACH_MSGH_BITS_COMPLEX":                  uint64(MakeBits(CopySend, MakeSendOnce, 0, true)),
		"MACH_MSGH_BITS(MACH_MSG_TYPE_MAKE_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE)":                                           uint64(MakeBits(MakeSend, MakeSendOnce, 0, false)),
		"MACH_MSGH_BITS(MACH_MSG_TYPE_MAKE_SEND_ONCE, 0)":                                                                 uint64(MakeBits(MakeSendOnce, 0, 0, false)),
		"MACH_MSGH_BITS(MACH_MSG_TYPE_MOVE_SEND, 0)":                                                                      uint64(MakeBits(MoveSend, 0, 0, false)),
		"MACH_MSGH_BITS(MACH_MSG_TYPE_MOVE_SEND_ONCE, 0)":                                                                 uint64(MakeBits(MoveSendOnce, 0, 0, false)),
		"MACH_MSGH_BITS_SET(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, 0, MACH_MSGH_BITS_COMPLEX)":            uint64(MakeBits(CopySend, MakeSendOnce, 0, true)),
		"MACH_MSGH_BITS_SET_PORTS(MACH_MSG_TYPE_COPY_SEND, MACH_MSG_TYPE_MAKE_SEND_ONCE, MACH_MSG_TYPE_COPY_SEND)":        uint64(MakeBits(CopySend, MakeSendOnce, CopySend, false)),
		"MACH_MSGH_BITS_REMOTE(0x80131513)":                                                                               uint64(Bits(0x80131513).Remote()),
		"MACH_MSGH_BITS_LOCAL(0x80131513)":                                                                                uint64(Bits(0x80131513).Local()),
		"MACH_MSGH_BITS_VOUCHER(0x80131513)":                                                                              uint64(Bits(0x80131513).Voucher()),
		"MACH_MSGH_BITS_OTHER(0x80131513)":                                                                                uint64(Bits(0x80131513).Other()),
		"MACH_MSGH_BITS_PORTS(0x80131513)":                                                                                uint64(Bits(0x80131513) & BitsPortsMask),
		"MACH_MSGH_BITS_IS_COMPLEX(0x80131513)":                                                                           boolU(Bits(0x80131513).Complex()),
		"MACH_RCV_MSG|MACH_RCV_TRAILER_TYPE(MACH_MSG_TRAILER_FORMAT_0)|MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_AUDIT)": abi.MACH_RCV_MSG | rcvAuditOptions,
		"MACH_RCV_MSG|MACH_RCV_LARGE|MACH_RCV_TIMEOUT|MACH_RCV_TRAILER_TYPE(MACH_MSG_TRAILER_FORMAT_0)|MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_AUDIT)": abi.MACH_RCV_MSG | abi.MACH_RCV_LARGE | abi.MACH_RCV_TIMEOUT | rcvAuditOptions,
		"REQUESTED_TRAILER_SIZE(MACH_RCV_TRAILER_ELEMENTS(MACH_RCV_TRAILER_AUDIT))":                                                                       auditTrailerSize,
		"sizeof(mach_msg_audit_trailer_t)":          auditTrailerSize,
		"sizeof(mach_msg_max_trailer_t)":            maxTrailerSize,
		"REQUESTED_TRAILER_SIZE(0)":                 minTrailerSize,
		"round_msg(1)":                              uint64(round4(1)),
		"round_msg(25)":                             uint64(round4(25)),
		"MACH_PORT_TYPE(MACH_PORT_RIGHT_SEND)":      uint64(TypeSend),
		"MACH_PORT_TYPE(MACH_PORT_RIGHT_RECEIVE)":   uint64(TypeReceive),
		"MACH_PORT_TYPE(MACH_PORT_RIGHT_SEND_ONCE)": uint64(TypeSendOnce),
		"MACH_PORT_TYPE(MACH_PORT_RIGHT_PORT_SET)":  uint64(TypePortSet),
		"MACH_PORT_TYPE(MACH_PORT_RIGHT_DEAD_NAME)": uint64(TypeDeadName),
		"sizeof(mach_port_context_t)":               8,
	}
	for expr, got := range cases {
		for _, arch := range []string{"arm64", "x86_64"} {
			want, err := facts.Derived(expr, arch)
			require.NoError(t, err)
			require.Equal(t, uint64(want), got, "%s on %s", expr, arch)
		}
	}
	t.Logf("%d derived constants checked", len(cases))
}

func boolU(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// Every name in the error table is the SDK's name for that value, and every kern_return_t and
// mach_msg_return_t the SDK defines has an entry.
func TestABIErrorTable(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	for code, e := range returnTable {
		v, ok := facts.Constant(e.name)
		require.True(t, ok, "%s is not an SDK constant", e.name)
		want, _ := new(big.Int).SetString(v.String(), 10)
		require.Equal(t, want.Int64(), int64(uint32(code)), e.name)
	}
	for name, v := range facts.Constants {
		code, ok := new(big.Int).SetString(v.String(), 10)
		if !ok {
			continue // not an integer constant
		}
		isReturn := (len(name) > 5 && name[:5] == "KERN_" && code.Int64() < 100) ||
			(len(name) > 10 && (name[:10] == "MACH_SEND_" || name[:9] == "MACH_RCV_") && code.Int64()&0x10000000 != 0)
		switch name {
		case "KERN_RETURN_MAX", "KERN_CODE_SELECTOR", "KERN_DATA_SELECTOR", "MACH_SEND_INVALID_OPTIONS",
			"MACH_SEND_AUX_TOO_SMALL", "MACH_SEND_AUX_TOO_LARGE":
			continue
		}
		if isReturn {
			_, ok := returnTable[int32(uint32(code.Int64()))]
			require.True(t, ok, "%s (%#x) has no entry in the error table", name, code.Int64())
		}
	}
	require.Equal(t, "(ipc/send) invalid destination port", SendInvalidDest.Text())
	_ = binary.LittleEndian
}
