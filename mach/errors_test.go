package mach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

func TestReturnCodes(t *testing.T) {
	cases := []struct {
		err      error
		name     string
		text     string
		deadline bool
	}{
		{SendInvalidDest, "MACH_SEND_INVALID_DEST", "(ipc/send) invalid destination port", false},
		{SendTimedOut, "MACH_SEND_TIMED_OUT", "(ipc/send) timed out", true},
		{RcvTimedOut, "MACH_RCV_TIMED_OUT", "(ipc/rcv) timed out", true},
		{RcvTooLarge, "MACH_RCV_TOO_LARGE", "(ipc/rcv) msg too large", false},
		{KernInvalidName, "KERN_INVALID_NAME", "(os/kern) invalid name", false},
		{KernInvalidRight, "KERN_INVALID_RIGHT", "(os/kern) invalid right", false},
		{KernUrefsOverflow, "KERN_UREFS_OVERFLOW", "(os/kern) urefs overflow", false},
		{KernOperationTimedOut, "KERN_OPERATION_TIMED_OUT", "(os/kern) operation timed out", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.Contains(t, c.err.Error(), c.name)
			require.Contains(t, c.err.Error(), c.text)
			wrapped := &OpError{Op: "mach_msg", Name: 0x103, Err: c.err}
			require.Equal(t, c.deadline, errors.Is(wrapped, os.ErrDeadlineExceeded))
			require.Equal(t, c.deadline, errors.Is(wrapped, context.DeadlineExceeded))
			require.Equal(t, c.deadline, wrapped.Timeout())
			require.ErrorIs(t, wrapped, c.err)
			require.Contains(t, wrapped.Error(), "mach_msg 0x103")
		})
	}
	require.Equal(t, "MACH_SEND_INVALID_DEST", SendInvalidDest.Name())
	require.Equal(t, "(ipc/send) invalid destination port", SendInvalidDest.Text())
	require.Equal(t, "KERN_SUCCESS", KernSuccess.Name())
	require.Equal(t, "", MsgReturn(0x7777).Name())
	require.NotEmpty(t, MsgReturn(0x10000077).Error())
	var kr KernReturn
	require.True(t, errors.As(&OpError{Err: KernInvalidValue}, &kr))
	require.Equal(t, KernInvalidValue, kr)
}

func TestClassifySendFailure(t *testing.T) {
	cases := map[MsgReturn]sendOutcome{
		SendInvalidDest:             sendUntouched,
		SendInvalidHeader:           sendUntouched,
		SendInvalidReply:            sendUntouched,
		SendTooLarge:                sendUntouched,
		SendMsgTooSmall:             sendUntouched,
		SendTimedOut:                sendReturned,
		SendInterrupted:             sendReturned,
		SendNoBuffer:                sendReturned,
		SendTimedOut | 0x2000:       sendReturned, // MACH_MSG_IPC_SPACE OR'd in
		SendInvalidRight:            sendPartial,
		SendInvalidMemory:           sendPartial,
		SendInvalidType:             sendUntouched,
		SendMsgFiltered:             sendHeaderDestroyed,
		SendNoGrantDest:             sendHeaderDestroyed,
		SendTimedOut | RcvBodyError: sendReturned, // the pseudo-receive's own trouble ORed in
	}
	for code, want := range cases {
		require.Equal(t, want, classifySendFailure(int32(code)), "%v", code)
	}
}

func TestReturnErrorPicksTheType(t *testing.T) {
	require.NoError(t, ReturnError(0))
	for _, code := range []int32{int32(SendInvalidDest), int32(RcvTimedOut), int32(SendTimedOut) | 0x2000} {
		var mr MsgReturn
		require.ErrorAs(t, ReturnError(code), &mr, "%#x", code)
	}
	for _, code := range []int32{4, 15, 1100} {
		var kr KernReturn
		require.ErrorAs(t, ReturnError(code), &kr, "%d", code)
	}
}

// A serving loop's two questions about a receive error: does it end the loop (the port is gone),
// or was one message dropped? Each error answers at most one of them.
func TestReceiveErrorClasses(t *testing.T) {
	op := func(err error) error { return &OpError{Op: "mach_msg receive", Name: 0x103, Err: err} }
	cases := []struct {
		err           error
		gone, dropped bool
	}{
		{op(ErrClosed), true, false},
		{op(RcvInvalidName), true, false},
		{op(RcvPortDied), true, false},
		{op(RcvPortChanged), true, false},
		{op(errors.ErrUnsupported), true, false},
		{op(fmt.Errorf("%w: dropped a message a peer wrote", ErrInvalidMessage)), false, true},
		{op(fmt.Errorf("%w: descriptor 0", ErrRejected)), false, true},
		{op(RcvTooLarge), false, true},
		{op(fmt.Errorf("%w (9 bytes): %w", ErrMessageTooLarge, RcvTooLarge)), false, true},
		{op(RcvTimedOut), false, false},
		{op(KernReturn(abi.KERN_RESOURCE_SHORTAGE)), false, false},
		{op(context.Canceled), false, false},
	}
	for _, c := range cases {
		require.Equal(t, c.gone, PortGone(c.err), "PortGone(%v)", c.err)
		require.Equal(t, c.dropped, MessageDropped(c.err), "MessageDropped(%v)", c.err)
	}
}
