package wire

import (
	"bytes"
	"testing"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// EncodeInto lays out exactly the bytes Packet.Encode does, also when it reuses a message that
// carried a packet of another size or shape before (stale bytes in the reused body must not
// show through as padding or descriptor slot).
func TestEncodeIntoMatchesEncode(t *testing.T) {
	reply, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer reply.Close()
	send, err := reply.MakeSend()
	require.NoError(t, err)
	defer send.Close()

	reused := new(mach.Message)
	dirty := bytes.Repeat([]byte{0xee}, InlineLimit)
	for _, n := range []int{0, 1, 7, 8, 9, 63, 64, 3999, 4000, 4001, 64 << 10} {
		for _, noData := range []bool{false, true} {
			data := bytes.Repeat([]byte{byte(n)}, n)
			p := Packet{MsgID: int32(n) - 5, ConvID: int32(n) + 1, Data: data, NoData: noData}
			var want mach.Message
			require.NoError(t, p.Encode(&want, mach.CopySendOf(send), mach.MakeSendOnceOf(reply)))
			wantBytes, err := want.Append(nil)
			require.NoError(t, err)

			// Dirty the reused message with a full inline packet of other bytes first.
			junk := Packet{MsgID: 9, ConvID: 9, Data: dirty}
			require.NoError(t, junk.EncodeInto(reused, mach.MakeSendOnceOf(reply), mach.Port{}))
			require.NoError(t, p.EncodeInto(reused, mach.CopySendOf(send), mach.MakeSendOnceOf(reply)))
			got, err := reused.Append(nil)
			require.NoError(t, err)
			require.Equal(t, wantBytes, got, "%d bytes, no data %v", n, noData)
			require.Equal(t, len(want.Descriptors), len(reused.Descriptors))
			if len(want.Descriptors) == 1 {
				d := reused.Descriptors[0].(*mach.OOLDescriptor)
				require.Same(t, &data[0], &d.Data[0], "out-of-line data is sent from the caller's memory")
			}
		}
	}
}
