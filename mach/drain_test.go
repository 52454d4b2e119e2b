package mach_test

import (
	"context"
	"testing"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// Destroying a queued dead-name notification leaks the dead name's extra reference; Drain
// releases it.
func TestDrainReleasesDeadNameReferences(t *testing.T) {
	for _, drain := range []bool{false, true} {
		port, err := mach.NewPort(mach.PortOptions{})
		require.NoError(t, err)
		send, err := port.MakeSend()
		require.NoError(t, err)
		notify, err := mach.NewPort(mach.PortOptions{})
		require.NoError(t, err)
		prev, err := send.RequestDeadName(notify)
		require.NoError(t, err)
		require.Nil(t, prev)
		require.NoError(t, port.Close()) // the notification is queued on notify now
		if drain {
			mach.Drain(notify)
		}
		require.NoError(t, notify.Close())
		require.NoError(t, send.Close())
		_, err = mach.TypeOf(send.Name())
		if drain {
			require.Error(t, err, "the dead name is gone")
		} else {
			require.NoError(t, err, "without Drain a reference stays (as in Mach)")
			require.NoError(t, mach.Deallocate(send.Name()))
		}
	}
}

// A deadline already past polls, as a Mach timeout of 0 does.
func TestExpiredDeadlinePolls(t *testing.T) {
	port, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer port.Close()
	expired, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	var m mach.Message
	require.ErrorIs(t, mach.Receive(expired, port, &m), mach.RcvTimedOut, "an empty queue")

	so, err := port.MakeSendOnce()
	require.NoError(t, err)
	require.NoError(t, mach.Send(context.Background(), &mach.Message{Remote: mach.MoveSendOnceOf(so), ID: 5}))
	require.NoError(t, mach.Receive(expired, port, &m), "a queued message")
	require.Equal(t, int32(5), m.ID)

	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	require.ErrorIs(t, mach.Receive(cancelled, port, &m), context.Canceled)
}
