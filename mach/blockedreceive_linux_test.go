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
	{"epoll", func(*testing.T, *mach.SendRight) {}, func(*testing.T, uint64) { time.Sleep(50 * time.Millisecond) }},
	{"recvmsg", func(t *testing.T, s *mach.SendRight) {
		_, ok := emu.ChannelFD(uint32(s.Name()))
		require.True(t, ok)
	}, waitBlocked},
}

type blockedWait struct {
	name        string
	prepare     func(t *testing.T, s *mach.SendRight)
	waitBlocked func(t *testing.T, before uint64)
}

// waitBlocked waits until a receive has blocked in recvmsg since before was read, so that the
// test exercises the wake-up of that wait.
func waitBlocked(t *testing.T, before uint64) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for emu.DirectWaits() == before {
		if time.Now().After(deadline) {
			t.Fatal("the receive did not block in recvmsg")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // from counting the wait to being inside recvmsg
}
