//go:build linux

package emu

import (
	"context"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// received is what a receive started by receiveInBackground returned.
type received struct {
	kr int32
	id int32
}

// receiveInBackground starts a receive on name without deadline or cancellation (so that it may
// wait in recvmsg) and returns where its result arrives.
func receiveInBackground(name uint32) <-chan received {
	got := make(chan received, 1)
	go func() {
		var out Msg
		size := func(ports, mems, body int) int { return 0 }
		_, kr := Receive(context.Background(), name, 1024, size, false, -1, &out)
		got <- received{kr, out.ID}
	}()
	return got
}

// dropSendOnce makes a send-once right to name and destroys it, which queues
// MACH_NOTIFY_SEND_ONCE on name.
func dropSendOnce(t *testing.T, name uint32) {
	t.Helper()
	so, _, kr := ExtractRight(name, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(so))
}

// requireReceived requires that a receive got a message with id.
func requireReceived(t *testing.T, r received, id int32) {
	t.Helper()
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), r.kr)
	require.Equal(t, id, r.id)
}
