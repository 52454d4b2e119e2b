//go:build linux

package emu

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// Blocking receivers of one port take turns to wait in the kernel: however many goroutines wait
// in Receive on it, one thread is blocked (in recvmsg on the port's one channel, or in epoll),
// the others wait in Go; and the ones waiting in Go still get their messages, and see their port
// destroyed or moved away, as the one in the kernel does.
func TestReceiversTakeTurns(t *testing.T) {
	const receivers = 4
	for _, port := range []struct {
		name string
		// make returns a port whose lone blocking receiver waits in recvmsg (direct) or in
		// epoll_wait.
		make   func(t *testing.T) uint32
		direct bool
	}{
		{name: "epoll", make: func(t *testing.T) uint32 { return newTestPort(t, 0) }},
		{name: "recvmsg", direct: true, make: func(t *testing.T) uint32 {
			p := newTestPort(t, 0)
			_, ok := ChannelFD(p) // its one channel, as a server's port from one client
			require.True(t, ok)
			return p
		}},
	} {
		for _, tc := range []struct {
			name string
			// act makes the receivers return, after they all wait; want is what each returns.
			act  func(t *testing.T, port uint32)
			want int32
		}{
			{name: "messages", act: func(t *testing.T, port uint32) {
				for i := range receivers {
					require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: int32(i + 1)}, -1))
				}
			}, want: abi.MACH_MSG_SUCCESS},
			{name: "destroyed", act: func(t *testing.T, port uint32) {
				require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(port, -1, 0))
			}, want: abi.MACH_RCV_PORT_CHANGED},
			{name: "moved", act: func(t *testing.T, port uint32) {
				carrier := newTestPort(t, 0)
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend | abi.MACH_MSGH_BITS_COMPLEX,
					Remote: carrier, Descs: []Desc{{Name: port, Disp: dispMoveReceive}}}, -1))
			}, want: abi.MACH_RCV_PORT_CHANGED},
		} {
			t.Run(port.name+"/"+tc.name, func(t *testing.T) {
				quietThreads(t)
				p := port.make(t)
				directs := DirectWaits()
				got := make(chan int32, receivers)
				for range receivers {
					go func() {
						var out Msg
						size := func(ports, mems, body int) int { return 0 }
						_, kr := Receive(context.Background(), p, 1<<20, size, false, -1, &out)
						got <- kr
					}()
				}
				// Wait (not for a time: for the state) until every receiver waits, in the kernel
				// or for its turn.
				for deadline := time.Now().Add(10 * time.Second); ThreadWaits()+TurnWaits() < receivers || !ReceiveBlocked(p); {
					require.True(t, time.Now().Before(deadline), "receivers never all waited: %d threads, %d for their turn",
						ThreadWaits(), TurnWaits())
					time.Sleep(time.Millisecond)
				}
				require.Equal(t, 1, ThreadWaits(), "receivers blocking a thread")
				require.Equal(t, port.direct, DirectWaits() > directs, "the receiver in the kernel waits in recvmsg")
				tc.act(t, p)
				requireReturns(t, got, receivers, tc.want)
				require.Equal(t, 0, ThreadWaits())
				require.Equal(t, 0, TurnWaits())
			})
		}
	}
}
