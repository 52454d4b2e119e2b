//go:build !darwin && !linux

package mach

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// Until the Linux emulation lands, every kernel operation says plainly that it is unsupported.
func TestUnsupportedPlatform(t *testing.T) {
	_, err := NewPort(PortOptions{})
	require.ErrorIs(t, err, errors.ErrUnsupported)
	var op *OpError
	require.ErrorAs(t, err, &op)
	require.Equal(t, "mach_port_construct", op.Op)
	_, err = NewPortSet()
	require.ErrorIs(t, err, errors.ErrUnsupported)
	require.ErrorIs(t, Send(context.Background(), &Message{Remote: Port{Name: 1, Disposition: CopySend}}), errors.ErrUnsupported)
	require.ErrorIs(t, Receive(context.Background(), AdoptReceive(1), &Message{}), errors.ErrUnsupported)
	_, err = Names()
	require.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = AllocateRegion(4096)
	require.ErrorIs(t, err, errors.ErrUnsupported)
	require.ErrorIs(t, AdoptSend(5).Close(), errors.ErrUnsupported)
}
