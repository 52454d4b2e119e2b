//go:build linux

package emu

import (
	"context"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// tooLarge receives from name with a buffer too small for any message and MACH_RCV_LARGE: the
// message must stay queued as it was (xnu's ipc_mqueue_select_on_thread leaves the kmsg on the
// queue and only reports its size).
func tooLarge(t *testing.T, name uint32) {
	t.Helper()
	var out Msg
	size := func(ports, mems, body int) int { return 1 << 10 }
	_, kr := Receive(context.Background(), name, 0, size, true, 0, &out)
	require.Equal(t, int32(abi.MACH_RCV_TOO_LARGE), kr)
}

// Review finding [MEDIUM]: a local message left in the queue by MACH_RCV_TOO_LARGE (with
// MACH_RCV_LARGE) gives up its queue slot: the queue then takes one message more than its limit.
// On xnu the message never left the queue, so a second send with a zero timeout times out.
func TestReviewTooLargeLocalMessageKeepsQueueSlot(t *testing.T) {
	port := newTestPort(t, 1)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1}, 0))
	tooLarge(t, port)
	require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 2}, 0),
		"the queue (limit 1) still holds message 1")
}

// Review finding [MEDIUM]: a local message left in the queue by MACH_RCV_TOO_LARGE gives up the
// send right it holds (tryPort's dequeued, then unget puts it back without it): no-senders fires
// while the message that holds the last send right is still queued. On xnu the queued kmsg keeps
// its destination's send right until it is received (ipc_object_copyout_dest).
func TestReviewTooLargeLocalMessageKeepsItsSendRight(t *testing.T) {
	notify := newTestPort(t, 0)
	port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(port, 0, 0) })
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 0, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	// The only send right moves into the message sent through it.
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSend, Remote: port, ID: 1}, 0))
	_, kr = tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "the queued message holds the send right")
	tooLarge(t, port)
	_, kr = tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "the message is still queued, with its send right")
	require.Equal(t, int32(1), receiveWithin(t, port).ID)
	require.Equal(t, int32(abi.MACH_NOTIFY_NO_SENDERS), receiveWithin(t, notify).ID)
}
