package mach_test

import (
	"context"
	"errors"
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

// Peek reports the queued messages by sequence number without receiving them: size, id and the
// trailer they will be received with; an empty queue, or a number not queued, is ErrNoMessage
// with KERN_FAILURE (xnu's mach_port_peek and ipc_mqueue_peek_locked).
func TestPeek(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	r, s := newPort(t, mach.PortOptions{QueueLimit: 8, Context: 0x55})

	_, err := mach.Peek(r, mach.PeekOptions{})
	require.ErrorIs(t, err, mach.ErrNoMessage, "an empty queue")
	require.ErrorIs(t, err, mach.KernFailure)

	// One message received first, so that the next sequence number is not the first.
	send(t, ctx, s, 9, nil)
	before := receive(t, ctx, r).Trailer.Seqno

	send(t, ctx, s, 1, make([]byte, 100))
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(s), ID: 2, Body: make([]byte, 8),
		Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.CopySendOf(s)}}}))
	head := before + 1

	for range 2 { // peeking twice sees the same: nothing was received
		p, err := mach.Peek(r, mach.PeekOptions{})
		require.NoError(t, err)
		require.Equal(t, head, p.Seqno)
		require.Equal(t, int32(1), p.ID)
		require.Equal(t, uint32(24+100+8), p.Size, "the kernel's header is 8 bytes larger (tests/ipc/port_peek.c)")
		require.Equal(t, uint32(52), p.Trailer.Size, "the audit trailer by default")
		require.Equal(t, head, p.Trailer.Seqno)
		require.Equal(t, uint32(os.Geteuid()), p.Trailer.Sender[0])
		require.Equal(t, os.Getpid(), p.Trailer.Audit.PID())
	}
	p, err := mach.Peek(r, mach.PeekOptions{Seqno: head + 1})
	require.NoError(t, err)
	require.Equal(t, int32(2), p.ID)
	require.Equal(t, head+1, p.Seqno)
	require.Equal(t, uint32(24+4+12+8+8+4), p.Size, "a kernel port descriptor is 4 bytes larger")
	_, err = mach.Peek(r, mach.PeekOptions{Seqno: head + 2})
	require.ErrorIs(t, err, mach.ErrNoMessage, "not queued yet")
	if before > 0 {
		_, err = mach.Peek(r, mach.PeekOptions{Seqno: before})
		require.ErrorIs(t, err, mach.ErrNoMessage, "received already")
	}

	for _, tc := range []struct {
		trailer mach.TrailerElements
		want    mach.Trailer
	}{
		{mach.TrailerNull, mach.Trailer{Size: 8}},
		{mach.TrailerSeqno, mach.Trailer{Size: 12, Seqno: head}},
		{mach.TrailerSender, mach.Trailer{Size: 20, Seqno: head, Sender: p.Trailer.Sender}},
	} {
		p, err := mach.Peek(r, mach.PeekOptions{Trailer: tc.trailer})
		require.NoError(t, err, "%v", tc.trailer)
		require.Equal(t, tc.want, p.Trailer, "%v", tc.trailer)
	}
	for _, tr := range []mach.TrailerElements{mach.TrailerContext, mach.TrailerAV, mach.TrailerAV + 1} {
		_, err := mach.Peek(r, mach.PeekOptions{Trailer: tr})
		require.ErrorIs(t, err, mach.KernInvalidValue, "%v: beyond the audit trailer", tr)
	}

	// The messages are received as peeked, in order.
	m1 := receive(t, ctx, r)
	require.Equal(t, int32(1), m1.ID)
	require.Equal(t, head, m1.Trailer.Seqno)
	require.Equal(t, m1.Size+8, uint32(24+100+8))
	m2 := receive(t, ctx, r)
	require.Equal(t, int32(2), m2.ID)
	require.Equal(t, head+1, m2.Trailer.Seqno)
	require.Equal(t, m2.Size+8+4, p.Size)
	_, err = mach.Peek(r, mach.PeekOptions{})
	require.ErrorIs(t, err, mach.ErrNoMessage)

	require.NoError(t, r.Close())
	_, err = mach.Peek(r, mach.PeekOptions{})
	require.ErrorIs(t, err, mach.ErrClosed)
}

// A message from another process is peeked with that process's audit token, and then received
// as peeked.
func TestPeekCrossProcess(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 60*time.Second)
	port, s := newPort(t, mach.PortOptions{QueueLimit: 16})
	reply, _ := newPort(t, mach.PortOptions{QueueLimit: 16})
	last, _ := newPort(t, mach.PortOptions{})
	startPeer(t, "echo", s)
	peer, pid := hello(t, ctx, port)

	// The peer answers in order: once the second reply is in, the first one is queued.
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), Local: mach.MakeSendOnceOf(reply), ID: idEcho, Body: []byte("first")}))
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), Local: mach.MakeSendOnceOf(last), ID: idEcho}))
	receive(t, ctx, last)

	p, err := mach.Peek(reply, mach.PeekOptions{})
	require.NoError(t, err)
	require.Equal(t, int32(idEcho), p.ID)
	require.Equal(t, pid, p.Trailer.Audit.PID(), "the peer's audit token")
	in := receive(t, ctx, reply)
	require.Equal(t, p.Seqno, in.Trailer.Seqno)
	require.Equal(t, p.Trailer.Audit, in.Trailer.Audit)
	require.Equal(t, in.Size+8, p.Size)
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), ID: idQuit}))
}

// Peek needs a receive right: xnu's mach_port_peek gives KERN_INVALID_RIGHT for a name that is
// not a valid port name or that denotes other rights (ipc_port_translate_receive), and
// KERN_INVALID_NAME for one that denotes nothing.
func TestPeekNeedsReceiveRight(t *testing.T) {
	checkLeaks(t)
	set, err := mach.NewPortSet()
	require.NoError(t, err)
	defer set.Close()
	// A send right whose port is gone: a dead name.
	r, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	s, err := r.MakeSend()
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, r.Close())
	for _, tc := range []struct {
		name string
		n    mach.Name
		want error
	}{
		{"MACH_PORT_NULL", mach.NameNull, mach.KernInvalidRight},
		{"MACH_PORT_DEAD", mach.NameDead, mach.KernInvalidRight},
		{"a port set", set.Name(), mach.KernInvalidRight},
		{"a dead name", s.Name(), mach.KernInvalidRight},
		{"nothing", unusedName(t, s.Name()), mach.KernInvalidName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mach.Peek(mach.AdoptReceive(tc.n), mach.PeekOptions{})
			require.ErrorIs(t, err, tc.want)
		})
	}
}

// unusedName is a name near n that names nothing in this task.
func unusedName(t *testing.T, n mach.Name) mach.Name {
	t.Helper()
	for cand := n + 0x10000; ; cand += 0x10000 {
		if _, err := mach.TypeOf(cand); errors.Is(err, mach.KernInvalidName) {
			return cand
		}
	}
}
