package mach_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A send right used inside its port's process can be carried to another process later, and
// works there too, as often as it is carried: the peer's messages arrive beside the process's
// own, with the peer's pid in the audit trailer (this process's for its own), and both count
// against the one queue limit: a peer's send waits while this process's message fills the queue,
// and is delivered once that message is received. (On Linux the right costs no fd until it is
// first carried out; then it gets the channel its copies in other processes share.)
func TestCrossProcessLocalSendRightCarriedOut(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 30*time.Second)
	parent, parentSend := newPort(t, mach.PortOptions{})
	startPeer(t, "forward", parentSend)
	forwarder, pid := hello(t, ctx, parent)

	r, s := newPort(t, mach.PortOptions{QueueLimit: 1})
	carry := func(id int32) {
		t.Helper()
		require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(forwarder), ID: id,
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.CopySendOf(s)}}}))
	}
	expect := func(id int32, from int) {
		t.Helper()
		m := receive(t, ctx, r)
		require.Equal(t, id, m.ID)
		require.Equal(t, from, m.Trailer.Audit.PID())
	}
	send(t, ctx, s, 1, nil) // fills the queue
	carry(2)                // the peer's send waits for room
	expect(1, os.Getpid())
	expect(2, pid)
	for id := int32(3); id < 6; id += 2 {
		carry(id)
		expect(id, pid)
		send(t, ctx, s, id+1, nil)
		expect(id+1, os.Getpid())
	}
	timeout, cancel := context.WithTimeout(ctx, 0)
	defer cancel()
	send(t, ctx, s, 7, nil)
	require.ErrorIs(t, mach.Send(timeout, &mach.Message{Remote: mach.CopySendOf(s), ID: 8}), mach.SendTimedOut,
		"the queue is full")
	expect(7, os.Getpid())
}
