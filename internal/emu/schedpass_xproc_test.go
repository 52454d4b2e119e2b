//go:build linux

package emu

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A goroutine that only makes round trips with another process blocks its thread in system
// calls and never parks in Go. Without passScheduler, Go's sysmon takes it for a goroutine that
// has run too long once its P's schedtick has not moved for 10 ms, and preempts it with SIGURG
// (retake in runtime/proc.go), again and again: here 12 to 17 signals in the half second (35
// under -race). With passScheduler, none came in 7 runs. signal.Notify sees the runtime's preemption signals;
// the collector is off so that no GC stops the world (which preempts by signal too), and nothing
// in this shape cancels a wait or sends locally (the emulation's own SIGURGs).
func TestRoundTripsAreNotPreemptedBySysmon(t *testing.T) {
	q, reply := heldReplyPeer(t)
	out := Msg{Bits: dispCopySend, Remote: q, ID: xRequest, Body: make([]byte, 64)}
	var in Msg
	size := func(int, int, int) int { return 0 }
	roundTrip := func() {
		o := out
		if kr := Send(&o, -1); kr != abi.MACH_MSG_SUCCESS {
			t.Fatalf("send: %#x", kr)
		}
		in.Body = in.Body[:0]
		if _, kr := Receive(context.Background(), reply, 1<<20, size, false, 5*time.Second, &in); kr != abi.MACH_MSG_SUCCESS {
			t.Fatalf("receive: %#x", kr)
		}
	}
	for range 100 {
		roundTrip()
	}

	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	urg := make(chan os.Signal, 1<<12)
	signal.Notify(urg, unix.SIGURG)
	defer signal.Stop(urg)
	n := 0
	for start := time.Now(); time.Since(start) < 500*time.Millisecond; n++ {
		roundTrip()
	}
	signal.Stop(urg)
	require.LessOrEqual(t, len(urg), 2, "preemption signals during %d round trips in 500 ms", n)
}
