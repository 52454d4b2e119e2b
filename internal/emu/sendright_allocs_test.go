//go:build linux && !race

package emu

import (
	"context"
	"os"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/rerun"
	"github.com/stretchr/testify/require"
)

// The race detector's instrumentation allocates: allocation counts are checked without it, as
// cfmessageport's TestRequestAllocs is. The counts are the whole process's, so they are taken in
// a child of their own (allocsAloneEnv): in the package's run, other tests' goroutines winding
// down allocate too.

// allocsAloneEnv, set to 1, tells a child of the test binary that it runs an allocation test
// alone.
const allocsAloneEnv = "EMU_TEST_ALLOCS_ALONE"

// A request that carries a send right made from its reply port (MAKE_SEND, the reply right
// the "carried" benchmark sends) allocates nothing in the requester, as one with a send-once
// right does: the make-send count goes up at commit from a list the transfer reuses.
func TestCarriedMakeSendAllocatesNothing(t *testing.T) {
	if os.Getenv(allocsAloneEnv) == "" {
		rerun.Test(t, allocsAloneEnv+"=1")
		return
	}
	q, reply := heldReplyPeer(t)
	out := Msg{Bits: dispCopySend | dispMakeSend<<8, Remote: q, Local: reply, ID: xRequest, Body: make([]byte, 64)}
	var in Msg
	size := func(int, int, int) int { return 0 }
	request := func() {
		o := out
		if kr := Send(&o, -1); kr != abi.MACH_MSG_SUCCESS {
			t.Fatalf("send: %#x", kr)
		}
		in.Body = in.Body[:0]
		if _, kr := Receive(context.Background(), reply, 1<<20, size, false, -1, &in); kr != abi.MACH_MSG_SUCCESS {
			t.Fatalf("receive: %#x", kr)
		}
	}
	for range 10 {
		request() // warm up: the transfer pool, the channel
	}
	require.Zero(t, testing.AllocsPerRun(500, request), "allocations per request")
	status := make([]int32, abi.MACH_PORT_RECEIVE_STATUS_COUNT)
	_, kr := GetAttributes(reply, abi.MACH_PORT_RECEIVE_STATUS, status)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	// newTestPort's own right, the setup's, and one per request (10 + 501 runs).
	require.Equal(t, int32(1+1+10+501), status[2], "the make-send count")
}
