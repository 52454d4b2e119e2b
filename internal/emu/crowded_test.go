//go:build linux

package emu

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// Receivers of one process beyond the first that blocks a thread park in Go's poller (crowded):
// however many goroutines wait in Receive, at most one thread is blocked in a receive system
// call, and the parked receivers still get their messages, and see their port destroyed or
// moved away, as a blocked thread does.
func TestCrowdedReceiversPark(t *testing.T) {
	const receivers = 6
	setYoungWait(t, time.Hour) // however late the goroutines start
	for _, tc := range []struct {
		name    string
		onePort bool
		// act makes the receivers return, after they all wait; want is what each returns.
		act  func(t *testing.T, ports []uint32)
		want int32
	}{
		{name: "messages", act: func(t *testing.T, ports []uint32) {
			for i, p := range ports {
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: p, ID: int32(i + 1)}, -1))
			}
		}, want: abi.MACH_MSG_SUCCESS},
		{name: "destroyed", onePort: true, act: func(t *testing.T, ports []uint32) {
			require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(ports[0], -1, 0))
		}, want: abi.MACH_RCV_PORT_CHANGED},
		{name: "moved", onePort: true, act: func(t *testing.T, ports []uint32) {
			carrier := newTestPort(t, 0)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend | abi.MACH_MSGH_BITS_COMPLEX,
				Remote: carrier, Descs: []Desc{{Name: ports[0], Disp: dispMoveReceive}}}, -1))
		}, want: abi.MACH_RCV_PORT_CHANGED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ports := make([]uint32, receivers)
			for i := range ports {
				if i == 0 || !tc.onePort {
					ports[i] = newTestPort(t, 0)
				} else {
					ports[i] = ports[0]
				}
			}
			parked := PollerWaits()
			got := make(chan int32, receivers)
			for _, p := range ports {
				go func() {
					var out Msg
					size := func(ports, mems, body int) int { return 0 }
					_, kr := Receive(context.Background(), p, 1<<20, size, false, -1, &out)
					got <- kr
				}()
			}
			// Wait (not for a time: for the state) until every receiver waits.
			for deadline := time.Now().Add(10 * time.Second); PollerWaits()-parked < receivers-1 || ThreadWaits() < 1; {
				require.True(t, time.Now().Before(deadline), "receivers never all waited: %d parked, %d threads",
					PollerWaits()-parked, ThreadWaits())
				time.Sleep(time.Millisecond)
			}
			require.Equal(t, 1, ThreadWaits(), "receivers blocking a thread")
			tc.act(t, ports)
			for range receivers {
				select {
				case kr := <-got:
					require.Equal(t, tc.want, kr)
				case <-time.After(10 * time.Second):
					t.Fatal("a receiver did not return")
				}
			}
			require.Equal(t, 0, ThreadWaits())
		})
	}
}

// A receiver that has blocked its thread for longer than youngWait (a server with nothing to do,
// a watcher of rare notifications) does not crowd the others: the next receiver blocks its
// thread too, as a single receiver does.
func TestIdleReceiverDoesNotCrowd(t *testing.T) {
	setYoungWait(t, time.Nanosecond)
	ports := []uint32{newTestPort(t, 0), newTestPort(t, 0)}
	parked := PollerWaits()
	got := make(chan int32, len(ports))
	for i, p := range ports {
		go func() {
			var out Msg
			size := func(ports, mems, body int) int { return 0 }
			_, kr := Receive(context.Background(), p, 1<<20, size, false, -1, &out)
			got <- kr
		}()
		for deadline := time.Now().Add(10 * time.Second); ThreadWaits() < i+1; {
			require.True(t, time.Now().Before(deadline), "receiver %d did not block its thread", i)
			time.Sleep(time.Millisecond)
		}
	}
	require.Equal(t, parked, PollerWaits())
	for i, p := range ports {
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: p, ID: int32(i + 1)}, -1))
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), <-got)
	}
}

func setYoungWait(t *testing.T, d time.Duration) {
	old := youngWait.Swap(int64(d))
	t.Cleanup(func() { youngWait.Store(old) })
}
