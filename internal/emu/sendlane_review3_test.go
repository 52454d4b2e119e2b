//go:build linux

package emu

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// Third adversarial review of send lanes, against the receive that reads its port's one channel
// after its wait with sp.mu released (recv.go: readAfterWait, endRead, the early message). Each
// test states the Mach behaviour it holds the merged emulation to, from xnu's source.

// The last holder of send rights to a port, tokens on a send lane, sends the port a message and
// releases its right; the port's receiver is woken by the message and reads it after its wait
// (sp.mu released). The port's no-senders request names the port itself. In xnu the message
// holds a send right to its destination from copy-in to the receiver's copy-out
// (ipc_kmsg_copyin_header takes it; ipc_kmsg_copyout_header releases it, ipc_port_release_send
// → ipc_notify_no_senders when ip_srights reaches 0), so the no-senders notification is queued
// only once the message has been dequeued: the receiver gets the message, and the notification
// after it. The holder's "return" can be read by this process's monitor before the receiver
// reads (settleSendLane finds the message queued; accept, in the receiver's endRead, settles
// the lane) or after it read but before it took sp.mu again (settleSendLane finds the channel
// empty): either way no-senders was queued on p.local ahead of the message read after the
// wait, which endRead's caller puts behind what p.local holds (recv.go, "early != nil &&
// len(p.local) > 0").
func TestSendLaneReview3NoSendersOvertakesMessageReadAfterWait(t *testing.T) {
	for _, tc := range []struct {
		name string
		hook *func(*rchan) // where the receiver waits while the return is read
	}{
		{"return read before the receiver reads", &readAfterWaitHook},
		{"return read after the receiver read", &readAfterWaitDoneHook},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := newTestPort(t, 0)
			carried := srPort(t) // its no-senders request names the port itself
			b := startReview2Peer(t, parent)
			releaseOwn := warmLane(t, b.slPeer, carried)
			b.give(carried, dispMakeSend)
			require.Equal(t, uint32(1), b.do(nil, slTake, 1)[1])
			releaseOwn()
			sp.mu.Lock()
			l := sendLaneTo(carried, b.q)
			sp.mu.Unlock()
			require.NotNil(t, l)
			waitFor(t, "the port's one channel is the lane's", func() bool {
				return len(sp.entries[carried].recv.chans) == 1
			})

			var armed atomic.Bool
			reached, goOn := make(chan struct{}), make(chan struct{})
			sp.mu.Lock()
			carriedPort := sp.entries[carried].recv
			sp.mu.Unlock()
			*tc.hook = func(rc *rchan) {
				if rc.p == carriedPort && armed.CompareAndSwap(true, false) {
					close(reached)
					<-goOn
				}
			}
			t.Cleanup(func() { *tc.hook = nil })
			type got struct {
				id int32
				kr int32
			}
			first := make(chan got, 1)
			go func() {
				// A time limit: the receive waits on the port's epoll fd and reads after its wait
				// (a blocking one would read in receiveDirect).
				var m Msg
				size := func(ports, mems, body int) int { return 0 }
				_, kr := Receive(context.Background(), carried, 1<<20, size, false, 30*time.Second, &m)
				first <- got{m.ID, kr}
			}()
			waitFor(t, "the receiver waits", func() bool { return sp.entries[carried].recv.waiters == 1 })
			armed.Store(true)
			require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, b.do(nil, slVia), "b's message to the port, on the lane")
			select {
			case <-reached:
			case <-time.After(10 * time.Second):
				t.Fatal("the receiver did not read after its wait within 10 s")
			}
			require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop), "b releases its right")
			waitFor(t, "the monitor reads b's return", func() bool { return l.outstanding == 0 })
			close(goOn)

			var g got
			select {
			case g = <-first:
			case <-time.After(30 * time.Second):
				t.Fatal("the receiver did not return within 30 s")
			}
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), g.kr)
			require.Equal(t, int32(xVia), g.id, "b's message comes before the no-senders its release caused (got %#x)", g.id)
			require.Equal(t, int32(abi.MACH_NOTIFY_NO_SENDERS), receiveWithin(t, carried).ID)
		})
	}
}

// waitFor waits at most 10 s for cond, checked with sp.mu held.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		sp.mu.Lock()
		ok := cond()
		sp.mu.Unlock()
		if ok {
			return
		}
		require.True(t, time.Now().Before(deadline), "%s within 10 s", what)
		time.Sleep(time.Millisecond)
	}
}
