//go:build linux

package emu

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A port status query reads the replies waiting on the port's lanes into its queue (pullLanes),
// so that it counts them. When it takes one that a receiver about to block in recvmsg on that
// lane was woken for, it wakes that receiver, which takes the reply from the queue at once
// rather than at its 2 s recvmsg timeout.
func TestStatusQueryWakesReceiverOfPulledReply(t *testing.T) {
	restore := SetPolling(0, time.Hour) // the blocking read itself
	defer restore()
	reply := newTestPort(t, 0)
	lfd, _, tok := laneFromPeer(t, reply)

	entered, release := make(chan struct{}), make(chan struct{})
	directWaitHook = func() {
		directWaitHook = nil // only the first wait: the receive's own, before it reads
		close(entered)
		<-release
	}
	defer func() { directWaitHook = nil }()
	got := receiveInBackground(reply)
	<-entered
	laneReply(t, lfd, tok, 42)
	require.EqualValues(t, 1, statusInfo(t, reply)[4], "the status query counts the reply") // mps_msgcount
	start := time.Now()
	close(release)
	select {
	case r := <-got:
		requireReceived(t, r, 42)
		require.Less(t, time.Since(start), time.Second, "the receiver read its channel on, not the queue")
	case <-time.After(5 * time.Second):
		t.Fatal("the reply the status query queued was not received in 5 s")
	}
}
