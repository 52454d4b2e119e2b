package mach_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A receive whose deadline has passed polls the queue, as a Mach timeout of 0 does, and gets
// what earlier calls queued: xnu queues MACH_NOTIFY_SEND_ONCE before the call that destroys an
// unused send-once right returns (ipc_right_dealloc → ipc_notify_send_once_and_unlock), for a
// port alone or in a set. (A leak check's warm-up once polled this way, after the race
// detector's slowness let its 1 s deadline pass, and failed: the emulation then queued the
// notification only when the receive read the channel's end of file.)
func TestPollReturnsNotificationOfDestroyedRight(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		rights int
		inSet  bool
	}{{1, false}, {3, false}, {1, true}, {2, true}} {
		t.Run(fmt.Sprintf("%d send-once rights, set %v", tc.rights, tc.inSet), func(t *testing.T) {
			r, _ := newPort(t, mach.PortOptions{})
			var from mach.Receiver = r
			if tc.inSet {
				set, err := mach.NewPortSet()
				require.NoError(t, err)
				t.Cleanup(func() { set.Close() })
				require.NoError(t, set.Add(r))
				from = set
			}
			for range tc.rights {
				so, err := r.MakeSendOnce()
				require.NoError(t, err)
				require.NoError(t, so.Close())
			}
			expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			defer cancel()
			var m mach.Message
			for i := range tc.rights {
				require.NoError(t, mach.Receive(expired, from, &m), "notification %d is queued", i)
				n, err := mach.ParseNotification(&m)
				require.NoError(t, err)
				require.Equal(t, mach.NotifySendOnce, n.Kind)
				require.NoError(t, m.Destroy())
			}
			require.ErrorIs(t, mach.Receive(expired, from, &m), mach.RcvTimedOut, "nothing more")
		})
	}
}

// Destroying an unused send-once right queues MACH_NOTIFY_SEND_ONCE before the call returns, as
// in xnu: the port's status counts the notification at once, and the send-once right it travels
// on until it is received (ipc_object_copyout_dest consumes it).
func TestDestroyedSendOnceIsCountedAtOnce(t *testing.T) {
	checkLeaks(t)
	r, _ := newPort(t, mach.PortOptions{})
	so, err := r.MakeSendOnce()
	require.NoError(t, err)
	st, err := r.Status()
	require.NoError(t, err)
	require.Equal(t, uint32(0), st.MessageCount)
	require.Equal(t, uint32(1), st.SendOnceCount)

	require.NoError(t, so.Close())
	st, err = r.Status()
	require.NoError(t, err)
	require.Equal(t, uint32(1), st.MessageCount, "the notification is queued")
	require.Equal(t, uint32(1), st.SendOnceCount, "held by the queued notification")

	var m mach.Message
	require.NoError(t, mach.Receive(ctxTimeout(t, 5*time.Second), r, &m))
	n, err := mach.ParseNotification(&m)
	require.NoError(t, err)
	require.Equal(t, mach.NotifySendOnce, n.Kind)
	require.NoError(t, m.Destroy())
	st, err = r.Status()
	require.NoError(t, err)
	require.Equal(t, uint32(0), st.MessageCount, "received")
	require.Equal(t, uint32(0), st.SendOnceCount, "consumed by the receive")
}

// The same poll when the right was destroyed in another process: xnu has queued the notification
// when the peer's mach_msg_destroy returned; the emulation reads the peer's word of it inside the
// receive, and the poll must hand it out. The echo peer destroys a request it does not answer
// (its reply right with it), then answers an echo on another port: once that answer is in, the
// word about the first right has been sent.
func TestPollReturnsNotificationOfRightDestroyedElsewhere(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 30*time.Second)
	peer := startEchoPeer(t, ctx)
	reply, _ := newPort(t, mach.PortOptions{})
	sync, _ := newPort(t, mach.PortOptions{})
	for round := range 3 {
		require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), Local: mach.MakeSendOnceOf(reply), ID: idEcho + 100}))
		require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), Local: mach.MakeSendOnceOf(sync), ID: idEcho}))
		var m mach.Message
		require.NoError(t, mach.Receive(ctx, sync, &m))
		require.NoError(t, m.Destroy())

		expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		require.NoError(t, mach.Receive(expired, reply, &m), "round %d: the notification is there", round)
		cancel()
		n, err := mach.ParseNotification(&m)
		require.NoError(t, err)
		require.Equal(t, mach.NotifySendOnce, n.Kind)
		require.NoError(t, m.Destroy())
	}
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), ID: idQuit}))
}
