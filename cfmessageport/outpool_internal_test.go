package cfmessageport

import (
	"testing"

	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A recycled message keeps its buffers but none of the rights or memory it was sent with, and a
// message that carried out-of-line memory is not recycled.
func TestOutMessagesForgetWhatTheyCarried(t *testing.T) {
	reply, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer reply.Close()

	m := new(mach.Message)
	p := wire.Packet{MsgID: 1, ConvID: 1, Data: []byte("inline")}
	require.NoError(t, p.EncodeInto(m, mach.MakeSendOnceOf(reply), mach.MakeSendOnceOf(reply)))
	putOutMessage(m)
	require.True(t, m.Remote.IsNull())
	require.True(t, m.Local.IsNull())

	ool := new(mach.Message)
	p.Data = make([]byte, wire.InlineLimit+1)
	require.NoError(t, p.EncodeInto(ool, mach.Port{}, mach.Port{}))
	putOutMessage(ool)
	require.Len(t, ool.Descriptors, 1, "an out-of-line message is left alone, not recycled")
}
