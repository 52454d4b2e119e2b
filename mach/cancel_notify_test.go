package mach_test

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A nil notify port cancels a dead-name request: the port's death then notifies nobody, and the
// send right becomes a plain dead name.
func TestRequestNotificationNilCancels(t *testing.T) {
	checkLeaks(t)
	r, s := newPort(t, mach.PortOptions{})
	notify, _ := newPort(t, mach.PortOptions{})
	prev, err := s.RequestDeadName(notify)
	require.NoError(t, err)
	require.Nil(t, prev)
	ty, err := mach.TypeOf(s.Name())
	require.NoError(t, err)
	require.True(t, ty.Has(mach.TypeDNRequest), "armed: %v", ty)

	prev, err = mach.RequestNotification(s.Name(), mach.NotifyDeadName, 0, nil)
	require.NoError(t, err)
	if prev != nil { // xnu returns the request's send-once right; the emulation does not
		require.NoError(t, prev.Close())
	}
	ty, err = mach.TypeOf(s.Name())
	require.NoError(t, err)
	require.False(t, ty.Has(mach.TypeDNRequest), "canceled: %v", ty)

	require.NoError(t, r.Close())
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	var m mach.Message
	for {
		err := mach.Receive(ctx, notify, &m)
		if err != nil {
			require.ErrorIs(t, err, mach.RcvTimedOut, "no dead-name notification")
			break
		}
		require.NotEqual(t, int32(mach.NotifyDeadName), m.ID, "a canceled request fired")
		require.NoError(t, m.Destroy())
	}
}
