//go:build linux

package mach_test

import (
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Linux-only behaviour of the emulation where it is stricter than xnu, which would destroy part
// of a message before failing it.

// A message that names the same right twice takes nothing: the emulation checks the whole
// message before taking any right.
func TestEmulationRefusesDoubleMove(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	_, dest := newPort(t, mach.PortOptions{})
	r, s := newPort(t, mach.PortOptions{})
	err := mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(dest), Descriptors: []mach.Descriptor{
		&mach.PortDescriptor{Port: mach.Port{Name: s.Name(), Disposition: mach.MoveSend}},
		&mach.PortDescriptor{Port: mach.Port{Name: s.Name(), Disposition: mach.MoveSend}},
	}})
	require.ErrorIs(t, err, mach.SendInvalidRight)
	refs, err := mach.Refs(s.Name(), mach.RightSend)
	require.NoError(t, err)
	require.Equal(t, uint32(1), refs)
	send(t, ctx, s, 1, nil)
	require.Equal(t, int32(1), receive(t, ctx, r).ID)
}

// A send that fails while copying rights in undoes what it made: no send-once right was made,
// so no MACH_NOTIFY_SEND_ONCE arrives.
func TestEmulationUndoesFailedCopyIn(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	_, dest := newPort(t, mach.PortOptions{})
	reply, _ := newPort(t, mach.PortOptions{})
	err := mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(dest), Local: mach.MakeSendOnceOf(reply),
		Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.Port{Name: 0x7fff0103, Disposition: mach.CopySend}}}})
	require.ErrorIs(t, err, mach.SendInvalidRight)
	var m mach.Message
	require.ErrorIs(t, mach.Receive(ctxTimeout(t, 100*time.Millisecond), reply, &m), mach.RcvTimedOut)
}

// A peer cannot claim a receive right of the receiver's by writing a token into a message.
func TestHostilePeerCannotForgeReceiveRight(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	r, s := newPort(t, mach.PortOptions{})
	fd, ok := emu.ChannelFD(uint32(s.Name()))
	require.True(t, ok)
	b := emuHeader(0, 0, 1, 0, -1)
	rec := make([]byte, 32)
	rec[0], rec[1] = 3, 16 // a receive right moved in-process
	binary.LittleEndian.PutUint16(rec[4:], 0xffff)
	binary.LittleEndian.PutUint16(rec[6:], 0xffff)
	binary.LittleEndian.PutUint64(rec[16:], 1)
	require.NoError(t, unix.Sendmsg(fd, append(b, rec...), nil, nil, unix.MSG_DONTWAIT))
	var m mach.Message
	require.ErrorIs(t, mach.Receive(ctx, r, &m), mach.ErrInvalidMessage)
	send(t, ctx, s, 2, nil)
	require.Equal(t, int32(2), receive(t, ctx, r).ID)
}

// Splitting a large region into memfds never costs a message its room for rights: a region
// followed by as many send rights as fit still goes, whatever GOMAXPROCS is.
func TestEmulationSplitsMemoryWithinFDBudget(t *testing.T) {
	checkLeaks(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	ctx := ctxTimeout(t, 10*time.Second)
	r, s := newPort(t, mach.PortOptions{})
	data := make([]byte, 64<<20)
	data[len(data)-1] = 42
	descs := []mach.Descriptor{&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy}}
	for range 126 { // two fds each: 252, and one memfd makes SCM_MAX_FD
		descs = append(descs, &mach.PortDescriptor{Port: mach.CopySendOf(s)})
	}
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(s), ID: 5, Descriptors: descs}))
	in := receive(t, ctx, r)
	require.Len(t, in.Descriptors, 127)
	require.Equal(t, byte(42), in.Descriptors[0].(*mach.OOLDescriptor).Data[len(data)-1])
}
