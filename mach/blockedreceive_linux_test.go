//go:build linux

package mach_test

import (
	"testing"
	"time"

	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

func directWaits() uint64 { return emu.DirectWaits() }

// blockedWaits are the ways a receive blocks in the emulation: in epoll on a port whose send
// rights are all in this process (they are references to the port, with no channel), and in
// recvmsg on a port with one channel (here the one its send right gets for another process).
var blockedWaits = []blockedWait{
	{"epoll", func(*testing.T, *mach.SendRight) {}, func(t *testing.T, r *mach.ReceiveRight, before uint64) {
		waitBlocked(t, r)
		require.Equal(t, before, emu.DirectWaits(), "the receive blocked in epoll, not in recvmsg")
	}},
	{"recvmsg", func(t *testing.T, s *mach.SendRight) {
		_, ok := emu.ChannelFD(uint32(s.Name()))
		require.True(t, ok)
	}, func(t *testing.T, r *mach.ReceiveRight, before uint64) {
		waitBlocked(t, r)
		require.Less(t, before, emu.DirectWaits(), "the receive blocked in recvmsg")
	}},
}

type blockedWait struct {
	name        string
	prepare     func(t *testing.T, s *mach.SendRight)
	waitBlocked func(t *testing.T, r *mach.ReceiveRight, before uint64)
}

// waitBlocked waits until a receive on r is inside the system call it blocks in (epoll_wait or
// recvmsg, as /proc/self/task/*/syscall shows: emu.ReceiveBlocked), so that the test exercises
// the wake-up of that wait. The bound only turns a receive that never blocks into a failure.
func waitBlocked(t *testing.T, r *mach.ReceiveRight) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !emu.ReceiveBlocked(uint32(r.Name())) {
		if time.Now().After(deadline) {
			t.Fatal("the receive did not block")
		}
		time.Sleep(time.Millisecond)
	}
}
