//go:build linux

package emu

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// queueStatus returns a port's MACH_PORT_RECEIVE_STATUS message count and send-once count.
func queueStatus(t *testing.T, name uint32) (msgs, sorights int32) {
	t.Helper()
	info := statusInfo(t, name)
	return info[4], info[5]
}

// makeSendOnce makes a send-once right to port, a channel of this process.
func makeSendOnce(t *testing.T, port uint32) uint32 {
	t.Helper()
	so, _, kr := ExtractRight(port, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	return so
}

// However a send-once right of this process's port is destroyed, MACH_NOTIFY_SEND_ONCE is
// queued before the call that destroys it returns, or at the latest when the port's status is
// asked (xnu queues it at once: ipc_right_dealloc, ipc_kmsg_destroy → ipc_notify_send_once),
// and the port's status counts it, with the send-once right it travels on.
func TestDestroyedSendOnceIsQueuedAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name    string
		destroy func(t *testing.T, port, so uint32)
	}{
		{"deallocated", func(t *testing.T, _, so uint32) {
			require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(so))
		}},
		{"mod_refs -1", func(t *testing.T, _, so uint32) {
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(so, abi.MACH_PORT_RIGHT_SEND_ONCE, -1))
		}},
		{"deallocated with a dead-name request armed", func(t *testing.T, _, so uint32) {
			// The request's watch holds a copy of the write end until the name goes.
			notify := newTestPort(t, 0)
			_, kr := RequestNotification(so, abi.MACH_NOTIFY_DEAD_NAME, 1, notify, dispMakeSendOnce)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(so))
		}},
		{"sent to a port of this process, received and deallocated", func(t *testing.T, _, so uint32) {
			q := newTestPort(t, 0)
			soQ := makeSendOnce(t, q)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: soQ, ID: 7,
				Descs: []Desc{{Name: so, Disp: dispMoveSendOnce}}}, 0))
			m := receiveWithin(t, q)
			require.Len(t, m.Descs, 1)
			require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(m.Descs[0].Name))
		}},
		{"in a message destroyed with its port", func(t *testing.T, _, so uint32) {
			q, kr := Construct(0, 0, 0)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			soQ := makeSendOnce(t, q)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: soQ, ID: 7,
				Descs: []Desc{{Name: so, Disp: dispMoveSendOnce}}}, 0))
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(q, abi.MACH_PORT_RIGHT_RECEIVE, -1))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := newTestPort(t, 0)
			so := makeSendOnce(t, port)
			tc.destroy(t, port, so)
			msgs, sorights := queueStatus(t, port)
			require.Equal(t, int32(1), msgs, "MACH_NOTIFY_SEND_ONCE is queued")
			require.Equal(t, int32(1), sorights, "the notification holds its send-once right")
			m := receiveWithin(t, port)
			require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), m.ID)
			msgs, sorights = queueStatus(t, port)
			require.Equal(t, [2]int32{0, 0}, [2]int32{msgs, sorights}, "received: nothing left")
		})
	}
}

// Peek sees the notification of a send-once right destroyed where the emulation learns of it
// only by reading the channel's end of file (the right came back to this process as a
// descriptor and was deallocated): the first message, as a receive would get it.
func TestPeekSeesNotificationOfDestroyedSendOnce(t *testing.T) {
	port, q := newTestPort(t, 0), newTestPort(t, 0)
	so, soQ := makeSendOnce(t, port), makeSendOnce(t, q)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: soQ, ID: 7,
		Descs: []Desc{{Name: so, Disp: dispMoveSendOnce}}}, 0))
	m := receiveWithin(t, q)
	require.Len(t, m.Descs, 1)
	require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(m.Descs[0].Name))
	p, kr := Peek(port, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr, "the notification is queued")
	require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), p.ID)
}

// A receiver waiting on the port holds its one channel (it reads it after its wait) and is
// woken by a local message instead: the send-once right destroyed meanwhile is still counted at
// once.
func TestStatusCountsSendOnceDestroyedUnderAWaitingReceiver(t *testing.T) {
	for round := range 20 {
		port := newTestPort(t, 0)
		so := makeSendOnce(t, port)
		done := make(chan int32, 1)
		go func() {
			var out Msg
			Receive(context.Background(), port, 1<<20, func(int, int, int) int { return 0 }, false, 10*time.Second, &out)
			done <- out.ID
		}()
		for deadline := time.Now().Add(10 * time.Second); !ReceiveBlocked(port); time.Sleep(time.Millisecond) {
			require.True(t, time.Now().Before(deadline), "round %d: the receiver waits within 10 s", round)
		}
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 42}, 0))
		require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(so))
		require.Equal(t, int32(42), <-done)
		msgs, _ := queueStatus(t, port)
		require.Equal(t, int32(1), msgs, "round %d: MACH_NOTIFY_SEND_ONCE is queued", round)
	}
}

// Destroying a send-once right never fires no-senders: a send-once right is no send right
// (xnu counts it in ip_sorights, not ip_srights). Here no send right ever existed, and the
// request is armed (its sync, 1, is over the make-send count, 0).
func TestDestroyedSendOnceFiresNoNoSenders(t *testing.T) {
	port, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(port, 0, 0) })
	notify := newTestPort(t, 0)
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 1, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(makeSendOnce(t, port)))
	m := receiveWithin(t, port)
	require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), m.ID)
	_, kr = tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no no-senders notification")
}
