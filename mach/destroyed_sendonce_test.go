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
// what earlier calls queued. xnu queues MACH_NOTIFY_SEND_ONCE before the call that destroys an
// unused send-once right returns (ipc_right_dealloc → ipc_notify_send_once_and_unlock); the
// emulation learns of a destroyed right when it reads the end of its channel, inside the
// receive, and the poll must still hand out the notification that read queued. (A leak check's
// warm-up polled this way once, after the race detector's slowness let its 1 s deadline pass,
// and failed.)
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
