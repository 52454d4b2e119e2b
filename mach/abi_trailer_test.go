package mach

import (
	"encoding/binary"
	"strconv"
	"testing"

	"github.com/machport/machport/internal/abitest"
	"github.com/stretchr/testify/require"
)

// Each trailer choice is the SDK's MACH_RCV_TRAILER_ELEMENTS value, asks for the
// REQUESTED_TRAILER_SIZE clang computed, and decodes every field of its trailer struct from the
// offset the SDK gives it, on both targets.
func TestABITrailers(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	for _, tc := range []struct {
		elems    TrailerElements
		constant string
		layout   string
	}{
		{TrailerNull, "MACH_RCV_TRAILER_NULL", "mach_msg_trailer_t"},
		{TrailerSeqno, "MACH_RCV_TRAILER_SEQNO", "mach_msg_seqno_trailer_t"},
		{TrailerSender, "MACH_RCV_TRAILER_SENDER", "mach_msg_security_trailer_t"},
		{TrailerAudit, "MACH_RCV_TRAILER_AUDIT", "mach_msg_audit_trailer_t"},
		{TrailerDefault, "MACH_RCV_TRAILER_AUDIT", "mach_msg_audit_trailer_t"},
		{TrailerContext, "MACH_RCV_TRAILER_CTX", "mach_msg_context_trailer_t"},
		{TrailerAV, "MACH_RCV_TRAILER_AV", "mach_msg_mac_trailer_t"},
	} {
		v, ok := facts.Constant(tc.constant)
		require.True(t, ok, tc.constant)
		require.Equal(t, v.String(), strconv.FormatUint(uint64(tc.elems.elements()), 10), tc.constant)
		for _, arch := range []string{"arm64", "x86_64"} {
			opts, err := facts.Derived("MACH_RCV_TRAILER_ELEMENTS("+tc.constant+")", arch)
			require.NoError(t, err)
			typ, err := facts.Derived("MACH_RCV_TRAILER_TYPE(MACH_MSG_TRAILER_FORMAT_0)", arch)
			require.NoError(t, err)
			require.Equal(t, opts|typ, int64(tc.elems.options()), "%v options on %s", tc.elems, arch)
			expr := "REQUESTED_TRAILER_SIZE(MACH_RCV_TRAILER_ELEMENTS(" + tc.constant + "))"
			if tc.elems == TrailerNull {
				expr = "REQUESTED_TRAILER_SIZE(0)"
			}
			size, err := facts.Derived(expr, arch)
			require.NoError(t, err)
			require.Equal(t, size, int64(tc.elems.Size()), "%s on %s", expr, arch)
		}
		for _, target := range abitest.Targets {
			l := layout(t, target, tc.layout)
			require.Equal(t, tc.elems.Size(), l.Size, "%s %s", target, tc.layout)
			b := make([]byte, l.Size)
			for i := range b {
				b[i] = byte(i + 1)
			}
			tr := decodeTrailerFields(b)
			var want []byte
			for _, f := range l.Fields {
				got := make([]byte, 0, f.Size)
				switch f.Name {
				case "msgh_trailer_type":
					continue // always format 0, checked by decodeTrailer
				case "msgh_trailer_size":
					got = binary.LittleEndian.AppendUint32(got, tr.Size)
					want = binary.LittleEndian.AppendUint32(want[:0], uint32(l.Size))
					require.Equal(t, want, got, "%s %s.%s", target, tc.layout, f.Name)
					continue
				case "msgh_seqno":
					got = binary.LittleEndian.AppendUint32(got, tr.Seqno)
				case "msgh_sender":
					for _, v := range tr.Sender {
						got = binary.LittleEndian.AppendUint32(got, v)
					}
				case "msgh_audit":
					for _, v := range tr.Audit {
						got = binary.LittleEndian.AppendUint32(got, v)
					}
				case "msgh_context":
					got = binary.LittleEndian.AppendUint64(got, tr.Context)
				case "msgh_ad":
					got = binary.LittleEndian.AppendUint32(got, uint32(tr.AD))
				case "msgh_labels":
					got = binary.LittleEndian.AppendUint32(got, tr.Labels)
				default:
					t.Fatalf("%s %s: field %s is not decoded", target, tc.layout, f.Name)
				}
				require.Equal(t, b[f.Offset:f.Offset+f.Size], got, "%s %s.%s", target, tc.layout, f.Name)
			}
		}
	}
}
