//go:build linux

package emu

import (
	"runtime"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// The polling rule by a port's record: a first wait and a slow one block, a quick one polls;
// misses that outnumber hits by pollMisses make the next pollRest receives block.
func TestPollRule(t *testing.T) {
	restore := SetPolling(50*time.Microsecond, 100*time.Microsecond)
	defer restore()
	type step struct {
		polled, hit bool
		waited      time.Duration
	}
	miss := step{polled: true, waited: 60 * time.Microsecond}
	hit := step{polled: true, hit: true, waited: 10 * time.Microsecond}
	for _, tc := range []struct {
		name  string
		steps []step
		want  []bool // wants() after the steps, then again and again
	}{
		{"first wait", nil, []bool{false}},
		{"quick wait", []step{{waited: 30 * time.Microsecond}}, []bool{true, true}},
		{"slow wait", []step{{waited: 200 * time.Microsecond}}, []bool{false, false}},
		{"hits", []step{hit, hit, hit}, []bool{true}},
		{"misses below the limit", []step{miss, miss, miss}, []bool{true}},
		{"misses at the limit rest", []step{miss, miss, miss, miss}, append(make([]bool, pollRest), true)},
		{"a hit takes a miss off", []step{miss, miss, hit, miss, miss}, []bool{true}},
		{"and one more miss rests", []step{miss, miss, hit, miss, miss, miss}, []bool{false}},
		{"hits bank nothing for later misses", []step{hit, hit, hit, miss, miss, miss, miss}, []bool{false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var st pollRecord
			for _, s := range tc.steps {
				st.done(s.polled, s.hit, s.waited)
			}
			for i, want := range tc.want {
				require.Equal(t, want, st.wants(), "receive %d after the steps", i)
			}
		})
	}
}

// Polling needs more than one CPU and P, polling on, and no receiver of the process parked in
// Go's poller; receivers blocked in system calls do not stop it. One receive polls at a time.
func TestPollAllowed(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("polling is off on one CPU, which this test's conditions assume")
	}
	restore := SetPolling(50*time.Microsecond, 100*time.Microsecond)
	defer restore()
	defer procs.Store(procs.Load())
	procs.Store(2)
	require.Zero(t, parkedNow.Load(), "another test left a receiver parked")
	require.True(t, pollAllowed())
	other := enterThreadWait(true)
	require.True(t, pollAllowed(), "another receiver blocked in a system call costs no CPU")
	leaveThreadWait(other)
	enterPark()
	require.False(t, pollAllowed(), "another receiver is parked in Go's poller")
	leavePark()
	procs.Store(1)
	require.False(t, pollAllowed(), "GOMAXPROCS 1")
	procs.Store(2)

	quick := pollRecord{lastWait: 10 * time.Microsecond}
	second := quick
	require.True(t, quick.next(), "a port whose last wait was quick polls")
	require.False(t, second.next(), "while another receive of the process polls")
	pollDone()
	require.True(t, second.next(), "once that poll is over")
	pollDone()

	SetPolling(0, 100*time.Microsecond)
	require.False(t, pollAllowed(), "polling off")
}

// A receiver that polls stops when something else wakes it (here the notification that
// destroying a send-once right queues in this process), rather than polling out its budget.
func TestPollingReceiverWokenByNotification(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("polling is off on one CPU")
	}
	restore := SetPolling(10*time.Second, time.Hour)
	defer restore()
	name, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	defer ModRefs(name, abi.MACH_PORT_RIGHT_RECEIVE, -1)
	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(name, name, dispMakeSend))
	defer Deallocate(name)
	_, ok := ChannelFD(name) // a receive waits in recvmsg on the one channel
	require.True(t, ok)
	sp.mu.Lock()
	sp.entries[name].recv.pollRec.lastWait = time.Microsecond // its last wait was quick: poll
	sp.mu.Unlock()

	polls0, hits0 := Polls()
	waits0 := DirectWaits()
	got := receiveInBackground(name)
	for DirectWaits() == waits0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // polling by now
	start := time.Now()
	dropSendOnce(t, name)
	requireReceived(t, <-got, abi.MACH_NOTIFY_SEND_ONCE)
	require.Less(t, time.Since(start), 2*time.Second, "the poll ran on after the wake-up")
	polls, hits := Polls()
	require.Equal(t, polls0+1, polls, "the receive polled")
	require.Equal(t, hits0, hits, "and was woken, not handed a message by its poll")
}
