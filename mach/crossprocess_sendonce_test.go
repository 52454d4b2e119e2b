package mach_test

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// Send-once rights that a process holds, or that wait in its port's queue, are destroyed when
// it dies: each sends MACH_NOTIFY_SEND_ONCE to its port (xnu's ipc_kmsg_destroy and
// ipc_right_terminate: ipc_notify_send_once). The peer here receives the first requests (so it
// holds their reply rights) and leaves the later ones queued; the emulation carries these
// rights as tokens on persistent channels, which must not outlive the rights.
func TestCrossProcessSendOnceRightsDieWithHolder(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 30*time.Second)
	for _, held := range []int{0, 1, 3} {
		port, s := newPort(t, mach.PortOptions{QueueLimit: 16})
		reply, _ := newPort(t, mach.PortOptions{})
		cmd := startPeer(t, "keep", s)
		peer, _ := hello(t, ctx, port)
		const requests = 5
		send := func(id int32, withReply bool) {
			m := &mach.Message{Remote: mach.CopySendOf(peer), ID: id}
			if withReply {
				m.Local = mach.MakeSendOnceOf(reply)
			}
			require.NoError(t, mach.Send(ctx, m))
		}
		for range held {
			send(idEcho, true)
		}
		send(idStop, false)
		for range requests - held {
			send(idEcho, true) // left in the peer's queue
		}
		var in mach.Message
		require.NoError(t, mach.Receive(ctx, port, &in))
		require.Equal(t, int32(idKept), in.ID)
		require.Equal(t, held, int(in.Body[0]), "the peer holds the rights of the requests it received")
		status, err := reply.Status()
		require.NoError(t, err)
		require.Equal(t, uint32(requests), status.SendOnceCount, "held %d: every reply right is outstanding", held)

		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		for range requests {
			n := notification(t, ctx, reply)
			require.Equal(t, mach.NotifySendOnce, n.Kind, "held %d", held)
		}
		quiet := ctxTimeout(t, 100*time.Millisecond)
		var m mach.Message
		require.ErrorIs(t, mach.Receive(quiet, reply, &m), os.ErrDeadlineExceeded, "held %d: one notification per right", held)
	}
}

// A send-once right that moves on from the process it was given to belongs to its new holder,
// whose death destroys it while the first holder lives on.
func TestCrossProcessSendOnceRightMovesOn(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 30*time.Second)
	port, s := newPort(t, mach.PortOptions{QueueLimit: 16})
	reply, _ := newPort(t, mach.PortOptions{})
	fwd := startPeer(t, "forward", s)
	forwarder, _ := hello(t, ctx, port)
	keeper := startPeer(t, "keep", s)
	holder, _ := hello(t, ctx, port)

	// Twice, so that the second right travels on a channel the forwarder already has.
	for range 2 {
		require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(forwarder), Local: mach.MakeSendOnceOf(reply),
			ID: idEcho, Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.CopySendOf(holder)}}}))
	}
	// Through the forwarder too, so that the holder receives it after the rights.
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(forwarder), ID: idStop,
		Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.CopySendOf(holder)}}}))
	var in mach.Message
	require.NoError(t, mach.Receive(ctx, port, &in))
	require.Equal(t, int32(idKept), in.ID)
	require.Equal(t, 2, int(in.Body[0]), "the holder got both rights")

	status, err := reply.Status()
	require.NoError(t, err)
	require.Equal(t, uint32(2), status.SendOnceCount)

	// The holder dies while the forwarder, which the rights came through, lives on.
	require.NoError(t, keeper.Process.Signal(syscall.SIGKILL))
	for range 2 {
		require.Equal(t, mach.NotifySendOnce, notification(t, ctx, reply).Kind)
	}
	require.NoError(t, fwd.Process.Signal(syscall.SIGKILL))
	fwd.Wait()
	quiet := ctxTimeout(t, 200*time.Millisecond)
	var m mach.Message
	require.ErrorIs(t, mach.Receive(quiet, reply, &m), os.ErrDeadlineExceeded, "one notification per right")
}

// A send-once right that moved on carries its reply from the new holder, whose pid the audit
// trailer names.
func TestCrossProcessSendOnceRightMovedOnAnswers(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 30*time.Second)
	port, s := newPort(t, mach.PortOptions{QueueLimit: 16})
	reply, _ := newPort(t, mach.PortOptions{})
	startPeer(t, "forward", s)
	forwarder, _ := hello(t, ctx, port)
	startPeer(t, "echo", s)
	echoer, pid := hello(t, ctx, port)
	for range 3 {
		require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(forwarder), Local: mach.MakeSendOnceOf(reply),
			ID: idEcho, Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.CopySendOf(echoer)}}}))
		var in mach.Message
		require.NoError(t, mach.Receive(ctx, reply, &in))
		require.Equal(t, int32(idEcho), in.ID)
		require.Equal(t, mach.PortSendOnce, in.Local.Disposition)
		require.Equal(t, pid, in.Trailer.Audit.PID(), "the reply comes from the holder the right moved to")
		require.NoError(t, in.Destroy())
	}
}
