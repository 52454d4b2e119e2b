//go:build linux

package emu

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Receivers of replies from other processes (on ports with lanes) beyond the first that blocks a
// thread park in Go's poller (crowded): however many goroutines wait in Receive, at most one
// thread is blocked in a receive system call, and the parked receivers still get their messages,
// and see their port destroyed or moved away, as a blocked thread does.
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
					ports[i] = replyPort(t)
				} else {
					ports[i] = ports[0]
				}
			}
			quietThreads(t)
			parked := PollerWaits()
			got := make(chan int32, receivers)
			for i, p := range ports {
				go func() {
					var out Msg
					size := func(ports, mems, body int) int { return 0 }
					_, kr := Receive(context.Background(), p, 1<<20, size, false, -1, &out)
					got <- kr
				}()
				if i == 0 {
					// The others start once the first blocks its thread: receivers that start
					// together may each see none blocked yet, and block threads too.
					for deadline := time.Now().Add(10 * time.Second); ThreadWaits() < 1; {
						require.True(t, time.Now().Before(deadline), "the first receiver did not block its thread")
						time.Sleep(time.Millisecond)
					}
				}
			}
			// Wait (not for a time: for the state) until every receiver waits.
			for deadline := time.Now().Add(10 * time.Second); PollerWaits()-parked < receivers-1 || ThreadWaits() < 1; {
				require.True(t, time.Now().Before(deadline), "receivers never all waited: %d parked, %d threads",
					PollerWaits()-parked, ThreadWaits())
				time.Sleep(time.Millisecond)
			}
			require.Equal(t, 1, ThreadWaits(), "receivers blocking a thread")
			tc.act(t, ports)
			requireReturns(t, got, receivers, tc.want)
			require.Equal(t, 0, ThreadWaits())
		})
	}
}

// A receiver that has blocked its thread for longer than youngWait (a server with nothing to do,
// a watcher of rare notifications) does not crowd the others: the next receiver blocks its
// thread too, as a single receiver does.
func TestIdleReceiverDoesNotCrowd(t *testing.T) {
	setYoungWait(t, time.Nanosecond)
	ports := []uint32{replyPort(t), replyPort(t)}
	receiversBlockThreads(t, ports)
}

// receiversBlockThreads starts a blocking receiver on each port in turn, requires that each
// blocks a thread and none parks in Go's poller, and then serves them a message each.
func receiversBlockThreads(t *testing.T, ports []uint32) {
	t.Helper()
	quietThreads(t)
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

// requireReturns requires n receivers to return want on got, within 10 s each.
func requireReturns(t *testing.T, got <-chan int32, n int, want int32) {
	t.Helper()
	for range n {
		select {
		case kr := <-got:
			require.Equal(t, want, kr)
		case <-time.After(10 * time.Second):
			t.Fatal("a receiver did not return")
		}
	}
}

// quietThreads waits until no receiver of the process blocks a thread. The tests that count
// ThreadWaits (a count for the whole process) start from none: a receiver of an earlier test
// that the test's end woke (its port destroyed) is counted until its thread runs, which on a
// loaded machine can be after the next test began; meanwhile it would also make crowded() true.
func quietThreads(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ThreadWaits() != 0; {
		require.True(t, time.Now().Before(deadline), "%d receivers of earlier tests still block threads", ThreadWaits())
		time.Sleep(time.Millisecond)
	}
}

func setYoungWait(t *testing.T, d time.Duration) {
	old := youngWait.Swap(int64(d))
	t.Cleanup(func() { youngWait.Store(old) })
}

// replyPort makes a port that has sent a send-once right for itself to a port of "another
// process" (a socket the test holds), so that it has a lane, as a requester's reply port does.
func replyPort(t *testing.T) uint32 {
	t.Helper()
	return laneTo(t, newTestPort(t, 0))
}

// laneTo gives reply a lane (see replyPort) and returns it.
func laneTo(t *testing.T, reply uint32) uint32 {
	t.Helper()
	server := newTestPort(t, 0)
	_, _, lfd := requestTo(t, server, reply, newPortID())
	require.GreaterOrEqual(t, lfd, 0)
	t.Cleanup(func() { unix.Close(lfd) })
	return reply
}

// A port without lanes (its senders may be in this process) never parks its receivers: when
// this process itself is busy, a parked receiver waits for the runtime to poll, which it does
// only when it runs out of other work.
func TestLocalPortReceiversBlockThreads(t *testing.T) {
	setYoungWait(t, time.Hour)
	ports := []uint32{newTestPort(t, 0), newTestPort(t, 0)}
	receiversBlockThreads(t, ports)
}

// A port leaves Go's poller once its receivers block threads again with none parked, whether in
// epoll (a port with a send right of its own besides the lane) or in recvmsg (a port whose only
// channel is the lane): in the poller, every message would also wake an idle thread of the
// runtime.
func TestPortLeavesPollerWhenNotCrowded(t *testing.T) {
	t.Run("epoll", func(t *testing.T) {
		// Its lane and a channel for its send right (which a local send right does not need:
		// ChannelFD makes it), so that a lone receiver waits in epoll.
		port := replyPort(t)
		_, ok := ChannelFD(port)
		require.True(t, ok)
		portLeavesPoller(t, port, false, func(int) {
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1}, -1))
		})
	})
	t.Run("recvmsg", func(t *testing.T) {
		// The port's only channel is its lane, and the messages are replies on it, so that
		// no new channel interrupts the receiver blocked in recvmsg.
		port, kr := Construct(0, 0, 0)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		t.Cleanup(func() { Destruct(port, -1, 0) })
		server, dest := newTestPort(t, 0), newPortID()
		_, tok, lfd := requestTo(t, server, port, dest)
		require.GreaterOrEqual(t, lfd, 0)
		t.Cleanup(func() { unix.Close(lfd) })
		require.NoError(t, laneCtl(lfd, laneHello, 0, -1))
		_, kr = tryReceiveNow(port)
		require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
		toks := []uint64{tok}
		for range 2 {
			_, tok, fd := requestTo(t, server, port, dest)
			require.Equal(t, -1, fd, "the same lane, by key")
			toks = append(toks, tok)
		}
		portLeavesPoller(t, port, true, func(i int) { laneReply(t, lfd, toks[i], 1) })
	})
}

// portLeavesPoller has two receivers wait on port (one blocks its thread, the other parks), sends
// them a message each with send(0) and send(1), and then checks that a lone receiver, which
// blocks its thread (in recvmsg if direct), has taken the port out of the poller.
func portLeavesPoller(t *testing.T, port uint32, direct bool, send func(i int)) {
	setYoungWait(t, time.Hour)
	inPoller := func() bool {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return sp.entries[port].recv.poll != nil
	}
	receive := func(got chan<- int32) {
		var out Msg
		size := func(ports, mems, body int) int { return 0 }
		_, kr := Receive(context.Background(), port, 1<<20, size, false, -1, &out)
		got <- kr
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); {
			require.True(t, time.Now().Before(deadline), what)
			time.Sleep(time.Millisecond)
		}
	}
	quietThreads(t)
	got := make(chan int32, 2)
	parked := PollerWaits()
	go receive(got)
	waitUntil("the first receiver blocks its thread", func() bool { return ThreadWaits() == 1 })
	go receive(got)
	waitUntil("the second receiver parks", func() bool { return PollerWaits() > parked })
	require.True(t, inPoller())
	for i := range 2 {
		send(i)
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), <-got)
	}
	waitUntil("nobody waits", func() bool { return ThreadWaits() == 0 })
	directs := DirectWaits()
	go receive(got)
	waitUntil("a lone receiver blocks its thread", func() bool { return ThreadWaits() == 1 })
	require.Equal(t, direct, DirectWaits() > directs, "the lone receiver waits in recvmsg")
	require.False(t, inPoller(), "the port is still in the poller")
	send(2)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), <-got)
}
