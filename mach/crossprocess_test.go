package mach_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

func TestCrossProcessEcho(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 60*time.Second)
	port, s := newPort(t, mach.PortOptions{QueueLimit: 16})
	reply, _ := newPort(t, mach.PortOptions{})
	startPeer(t, "echo", s)
	peer, pid := hello(t, ctx, port)

	request := func(m *mach.Message) *mach.Message {
		m.Remote, m.Local, m.ID = mach.CopySendOf(peer), mach.MakeSendOnceOf(reply), idEcho
		require.NoError(t, mach.Send(ctx, m))
		var in mach.Message
		require.NoError(t, mach.Receive(ctx, reply, &in))
		require.Equal(t, int32(idEcho), in.ID)
		require.Equal(t, mach.PortSendOnce, in.Local.Disposition, "the reply came through the send-once right")
		require.Equal(t, pid, in.Trailer.Audit.PID(), "the audit trailer names the real sender")
		require.Equal(t, uint32(os.Getuid()), in.Trailer.Audit.EUID())
		require.Equal(t, uint32(os.Getuid()), in.Trailer.Sender[0])
		return &in
	}
	for _, size := range []int{0, 64, 4000, 100 << 10} {
		body := bytes.Repeat([]byte{7}, size)
		in := request(&mach.Message{Body: body})
		require.True(t, bytes.Equal(body, in.Body))
		require.NoError(t, in.Destroy())
	}
	for _, size := range []int{1, 4001, 64 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i % 251)
		}
		in := request(&mach.Message{Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy}}})
		sum := sha256.Sum256(data)
		require.Equal(t, sum[:], in.Body[:32], "%d bytes arrived identical", size)
		require.Equal(t, uint32(size), binary.LittleEndian.Uint32(in.Body[32:]))
		require.NoError(t, in.Destroy())
	}
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), ID: idQuit}))
}

func TestCrossProcessReceiverKilled(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 10*time.Second)
	port, s := newPort(t, mach.PortOptions{})
	notify, _ := newPort(t, mach.PortOptions{})
	cmd := startPeer(t, "echo", s)
	peer, _ := hello(t, ctx, port)
	_, err := peer.RequestDeadName(notify)
	require.NoError(t, err)

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	n := notification(t, ctx, notify)
	require.Equal(t, mach.NotifyDeadName, n.Kind)
	require.Equal(t, peer.Name(), n.Name)
	require.NoError(t, n.CloseDeadName())
	err = mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), ID: idEcho})
	require.ErrorIs(t, err, mach.SendInvalidDest)
}

func TestCrossProcessSenderKilled(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 10*time.Second)
	notify, _ := newPort(t, mach.PortOptions{})
	port, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer port.Close()
	s, err := port.MakeSend()
	require.NoError(t, err)
	cmd := startPeer(t, "hold", s)
	peerPort, _ := hello(t, ctx, port)
	require.NoError(t, peerPort.Close())
	require.NoError(t, s.Close()) // now only the peer holds a send right
	_, err = port.RequestNoSenders(0, notify)
	require.NoError(t, err)
	quiet := ctxTimeout(t, 100*time.Millisecond)
	var m mach.Message
	require.ErrorIs(t, mach.Receive(quiet, notify, &m), os.ErrDeadlineExceeded)

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	n := notification(t, ctx, notify)
	require.Equal(t, mach.NotifyNoSenders, n.Kind)
}
