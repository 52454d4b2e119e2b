package cfmessageport

import (
	"context"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// After the conversation counter wraps, a new request skips ids still waiting for replies.
func TestConversationIDsSkipWaitingRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := "com.machport.cfmp.internal." + t.Name() + "." + itoa(os.Getpid())
	srv, err := Listen(name, HandlerFunc(func(_ context.Context, req *Message) ([]byte, error) {
		if string(req.Data) == "A" {
			time.Sleep(300 * time.Millisecond)
		}
		return req.Data, nil
	}), &ServerOptions{Concurrency: 2})
	require.NoError(t, err)
	defer srv.Close()
	r, err := Dial(ctx, name)
	require.NoError(t, err)
	defer r.Close()

	a := make(chan []byte, 1)
	go func() { got, _ := r.Request(ctx, 1, []byte("A")); a <- got }() // conversation 1
	time.Sleep(50 * time.Millisecond)
	r.conv.Store(math.MaxInt32) // the next id wraps to 1, which A still holds
	got, err := r.Request(ctx, 1, []byte("B"))
	require.NoError(t, err)
	require.Equal(t, "B", string(got))
	require.Equal(t, "A", string(<-a))
}

func itoa(n int) string { return strconv.Itoa(n) }

// An out-of-line reply is sent from a region with deallocate set, as CF's server sends it.
func TestOutOfLineReplyDeallocates(t *testing.T) {
	reply, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer reply.Close()
	so, err := reply.MakeSendOnce()
	require.NoError(t, err)
	defer so.Close()
	data := make([]byte, 5000)
	data[4999] = 9
	m, region, err := encodeReply(wire.Packet{MsgID: 3, ConvID: -1, Data: data}, so)
	require.NoError(t, err)
	defer region.Close()
	b, err := m.Append(nil)
	require.NoError(t, err)
	require.Len(t, b, 60)
	require.Equal(t, []byte{0x12, 0, 0, 0x80}, b[0:4], "MOVE_SEND_ONCE, complex")
	require.Equal(t, []byte{1, 1, 0, 1}, b[36:40], "deallocate 1, copy VIRTUAL, type OOL")
	require.Equal(t, byte(9), region.Bytes()[4999])
}
