//go:build linux

package mach_test

import (
	"errors"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// On Linux a receive right cannot move to another process: the send fails with a typed error
// before anything is taken, and the right stays the sender's.
func TestCrossProcessMoveReceiveUnsupported(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 10*time.Second)
	peer := startEchoPeer(t, ctx)
	moving, movingSend := newPort(t, mach.PortOptions{})
	err := mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), ID: 5,
		Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MoveReceiveOf(moving)}}})
	require.ErrorIs(t, err, mach.ErrMoveReceiveUnsupported)
	require.True(t, errors.Is(err, errors.ErrUnsupported))
	send(t, ctx, movingSend, 6, nil)
	require.Equal(t, int32(6), receive(t, ctx, moving).ID, "the receive right is still here")
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), ID: idQuit}))
}
