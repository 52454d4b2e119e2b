//go:build linux

package mach_test

import (
	"testing"
	"time"

	"github.com/machport/machport/internal/emu"
)

func directWaits() uint64 { return emu.DirectWaits() }

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
