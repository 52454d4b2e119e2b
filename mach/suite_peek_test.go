package mach_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A message over MaxSize fails with MACH_RCV_TOO_LARGE even when it fits the initial buffer, as
// a Mach receive into a buffer of MaxSize (plus the trailer) would: with MACH_RCV_LARGE it stays
// queued, with Exact it is destroyed. A message of exactly MaxSize is received.
func TestReceiveMaxSizeWithinBuffer(t *testing.T) {
	checkLeaks(t)
	const maxSize = 1024
	for _, tc := range []struct {
		name   string
		exact  bool
		queued bool // the refused message is still at the head of the queue afterwards
	}{
		{"MACH_RCV_LARGE leaves it queued", false, true},
		{"Exact destroys it", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxTimeout(t, 5*time.Second)
			r, s := newPort(t, mach.PortOptions{QueueLimit: 4})
			send(t, ctx, s, 1, make([]byte, 4096-24)) // msgh_size 4096: fits BufferSize, not MaxSize
			var m mach.Message
			err := mach.ReceiveWithOptions(ctx, r, &m, mach.ReceiveOptions{BufferSize: 16 << 10, MaxSize: maxSize, Exact: tc.exact})
			require.ErrorIs(t, err, mach.RcvTooLarge)

			send(t, ctx, s, 2, make([]byte, maxSize-24)) // exactly MaxSize
			if tc.queued {
				got := receive(t, ctx, r)
				require.Equal(t, int32(1), got.ID, "the refused message stayed at the head")
				require.Equal(t, uint32(4096), got.Size)
			}
			err = mach.ReceiveWithOptions(ctx, r, &m, mach.ReceiveOptions{BufferSize: 16 << 10, MaxSize: maxSize, Exact: tc.exact})
			require.NoError(t, err, "a message of exactly MaxSize is received")
			require.Equal(t, int32(2), m.ID)
			require.Equal(t, uint32(maxSize), m.Size)
			require.NoError(t, m.Destroy())

			poll, cancel := context.WithDeadline(ctx, time.Unix(1, 0))
			defer cancel()
			require.ErrorIs(t, mach.Receive(poll, r, &m), mach.RcvTimedOut, "nothing else was queued")
		})
	}
}

// Each trailer choice gives the trailer of its size, with the fields it covers and none beyond:
// the sequence number, the sender's tokens, the audit token, the port's context.
func TestReceiveTrailerChoice(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	const portContext = 0x1122334455667788
	r, s := newPort(t, mach.PortOptions{QueueLimit: 4, Context: portContext})
	// A first message sets where the sequence numbers are.
	send(t, ctx, s, 0, nil)
	first := receive(t, ctx, r)
	seqno := first.Trailer.Seqno
	for _, tc := range []struct {
		trailer mach.TrailerElements
		size    uint32
	}{
		{mach.TrailerNull, 8},
		{mach.TrailerSeqno, 12},
		{mach.TrailerSender, 20},
		{mach.TrailerAudit, 52},
		{mach.TrailerDefault, 52},
		{mach.TrailerContext, 60},
		{mach.TrailerAV, 68},
	} {
		t.Run(tc.trailer.String(), func(t *testing.T) {
			require.Equal(t, int(tc.size), tc.trailer.Size())
			send(t, ctx, s, 7, []byte("trailer"))
			seqno++
			var m mach.Message
			require.NoError(t, mach.ReceiveWithOptions(ctx, r, &m, mach.ReceiveOptions{Trailer: tc.trailer}))
			defer m.Destroy()
			require.Equal(t, int32(7), m.ID)
			tr := m.Trailer
			require.Equal(t, tc.size, tr.Size)
			want := mach.Trailer{Size: tc.size}
			if tc.size >= 12 {
				want.Seqno = seqno
			}
			if tc.size >= 20 {
				want.Sender = mach.SecurityToken{uint32(os.Geteuid()), tr.Sender[1]}
			}
			if tc.size >= 52 {
				want.Audit = tr.Audit
				require.Equal(t, os.Getpid(), tr.Audit.PID())
			}
			if tc.size >= 60 {
				want.Context = portContext
			}
			require.Equal(t, want, tr)
		})
	}
	var m mach.Message
	err := mach.ReceiveWithOptions(ctx, r, &m, mach.ReceiveOptions{Trailer: mach.TrailerAV + 1})
	require.ErrorIs(t, err, mach.KernInvalidValue, "a trailer choice that does not exist")
}
