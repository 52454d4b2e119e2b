//go:build linux

package emu

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// Senders blocked on a full queue (limit 1) are each woken in turn as messages are received,
// one per freed slot, and none is forgotten: every message of the patient senders (no time
// limit) is delivered, while impatient ones (a time limit of up to a millisecond) come and go,
// consuming wake-ups and giving up. The senders' periodic check for a dead receiver, which
// would hide a lost wake-up behind a 50 ms delay, is made an hour long: a lost wake-up leaves a
// sender asleep with room in the queue, and the receive times out.
func TestQueueWakesEveryWaitingSender(t *testing.T) {
	defer func(d time.Duration) { deadCheckInterval = d }(deadCheckInterval)
	deadCheckInterval = time.Hour
	port := newTestPort(t, 1)
	const patient, impatient, each = 16, 16, 100

	var wg sync.WaitGroup
	var impatientSent atomic.Int64
	for range patient {
		wg.Go(func() {
			for range each {
				if kr := Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1}, -1); kr != abi.MACH_MSG_SUCCESS {
					t.Errorf("send: %#x", kr)
					return
				}
			}
		})
	}
	impatientDone := make(chan struct{})
	var iwg sync.WaitGroup
	for i := range impatient {
		iwg.Go(func() {
			for j := range each {
				timeout := time.Duration((i*each+j)%4) * 300 * time.Microsecond
				switch kr := Send(&Msg{Bits: dispCopySend, Remote: port, ID: 2}, timeout); kr {
				case abi.MACH_MSG_SUCCESS:
					impatientSent.Add(1)
				case abi.MACH_SEND_TIMED_OUT:
				default:
					t.Errorf("send: %#x", kr)
					return
				}
			}
		})
	}
	go func() { iwg.Wait(); close(impatientDone) }()

	got := map[int32]int64{}
	size := func(ports, mems, body int) int { return 0 }
	progress := time.Now()
	for {
		select {
		case <-impatientDone:
			if got[1] == patient*each && got[2] == impatientSent.Load() {
				wg.Wait()
				return
			}
		default:
		}
		var out Msg
		switch _, kr := Receive(context.Background(), port, 1024, size, false, 100*time.Millisecond, &out); kr {
		case abi.MACH_MSG_SUCCESS:
			got[out.ID]++
			progress = time.Now()
		case abi.MACH_RCV_TIMED_OUT:
			if time.Since(progress) > 10*time.Second {
				t.Fatalf("no message for 10 s with %d of %d patient messages received: a sender waits with room in the queue",
					got[1], patient*each)
			}
		default:
			t.Fatalf("receive: %#x", kr)
		}
	}
}

// The port's death wakes every sender blocked on its full queue, not one: with the senders'
// periodic check for a dead receiver made an hour long, only that wake-up can release them. They
// return success, as xnu counts a message whose port died under a waiting sender as delivered.
func TestPortDeathWakesEveryWaitingSender(t *testing.T) {
	defer func(d time.Duration) { deadCheckInterval = d }(deadCheckInterval)
	deadCheckInterval = time.Hour
	port := newTestPort(t, 1)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1}, 0))

	const senders = 8
	done := make(chan int32, senders)
	for range senders {
		go func() { done <- Send(&Msg{Bits: dispCopySend, Remote: port, ID: 2}, -1) }()
	}
	// The first sender to wait makes the port's counter (its send right is local: until then
	// the port counts its queue without one).
	var ctr *counter
	for start := time.Now(); ctr == nil; time.Sleep(time.Millisecond) {
		require.Less(t, time.Since(start), 10*time.Second, "no sender waits")
		sp.mu.Lock()
		if c := sp.entries[port].recv.ctr; c != nil {
			ctr = c.ref() // read below after the port is gone
		}
		sp.mu.Unlock()
	}
	defer ctr.close()
	for start := time.Now(); atomic.LoadInt32(ctr.waiting()) != senders; time.Sleep(time.Millisecond) {
		require.Less(t, time.Since(start), 10*time.Second, "the senders never all wait")
	}
	require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(port, -1, 0))
	for i := range senders {
		select {
		case kr := <-done:
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d senders still wait 10 s after the port died", senders-i, senders)
		}
	}
}
