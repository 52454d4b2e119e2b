//go:build linux

package emu

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/assert"
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
					waitFor(t, "the first receiver blocks its thread", func() bool { return ThreadWaits() >= 1 })
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
		waitFor(t, fmt.Sprintf("receiver %d blocks its thread", i), func() bool { return ThreadWaits() >= i+1 })
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

// A receiver blocked on a port that only this process can wake (no channel, no lane: a watcher
// of notifications) does not crowd a requester's receive on its reply port, however recently it
// began to wait: the requester blocks its thread as a single receiver does.
func TestNotificationWaiterDoesNotCrowd(t *testing.T) {
	setYoungWait(t, time.Hour)
	ports := []uint32{newTestPort(t, 0), replyPort(t)}
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
		port, lfd, toks := laneOnlyPort(t)
		portLeavesPoller(t, port, true, func(i int) { laneReply(t, lfd, toks[i], 1) })
	})
}

// laneOnlyPort makes a port whose only channel is its lane from "another process" (a socket the
// test holds: lfd, the lane's write end), as a requester's reply port, and returns it with three
// tokens the peer may reply with.
func laneOnlyPort(t *testing.T) (port uint32, lfd int, toks []uint64) {
	t.Helper()
	port, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(port, 0, 0) })
	server, dest := newTestPort(t, 0), newPortID()
	_, tok, lfd := requestTo(t, server, port, dest)
	require.GreaterOrEqual(t, lfd, 0)
	t.Cleanup(func() { unix.Close(lfd) })
	require.NoError(t, laneCtl(lfd, laneHello, 0, -1))
	_, kr = tryReceiveNow(port)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
	toks = []uint64{tok}
	for range 2 {
		_, tok, fd := requestTo(t, server, port, dest)
		require.Equal(t, -1, fd, "the same lane, by key")
		toks = append(toks, tok)
	}
	return port, lfd, toks
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
	quietThreads(t)
	got := make(chan int32, 2)
	parked := PollerWaits()
	go receive(got)
	waitFor(t, "the first receiver blocks its thread", func() bool { return ThreadWaits() == 1 })
	go receive(got)
	waitFor(t, "the second receiver parks", func() bool { return PollerWaits() > parked })
	require.True(t, inPoller())
	for i := range 2 {
		send(i)
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), <-got)
	}
	waitFor(t, "nobody waits", func() bool { return ThreadWaits() == 0 })
	directs := DirectWaits()
	go receive(got)
	waitFor(t, "a lone receiver blocks its thread", func() bool { return ThreadWaits() == 1 })
	require.Equal(t, direct, DirectWaits() > directs, "the lone receiver waits in recvmsg")
	require.False(t, inPoller(), "the port is still in the poller")
	send(2)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), <-got)
}

// A receiver reads its port's one channel right after its wait, without the space lock
// (readAfterWait). What happens to the port meanwhile is seen as it would be without that read:
// a port whose receive right moved keeps the message for its new holder, a port destroyed
// gives MACH_RCV_PORT_CHANGED, and a message another receive left at the head of the queue as
// too large is received first.
func TestMessageReadAfterWaitFollowsThePort(t *testing.T) {
	size := func(ports, mems, body int) int { return 100 + body }
	for _, tc := range []readAfterWaitCase{
		{name: "moved", want: abi.MACH_RCV_PORT_CHANGED, act: func(t *testing.T, port uint32, _ func(int32)) func() uint32 {
			carrier := newTestPort(t, 0)
			assert.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend | abi.MACH_MSGH_BITS_COMPLEX,
				Remote: carrier, Descs: []Desc{{Name: port, Disp: dispMoveReceive}}}, -1))
			return func() uint32 {
				m, kr := tryReceiveNow(carrier)
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
				require.Len(t, m.Descs, 1)
				t.Cleanup(func() { Destruct(m.Descs[0].Name, -1, 0) })
				return m.Descs[0].Name
			}
		}},
		{name: "destroyed", want: abi.MACH_RCV_PORT_CHANGED, act: func(t *testing.T, port uint32, _ func(int32)) func() uint32 {
			assert.Equal(t, int32(abi.KERN_SUCCESS), Destruct(port, 0, 0))
			return nil
		}},
		{name: "too large at the head", want: abi.MACH_MSG_SUCCESS, wantID: 7, act: func(t *testing.T, port uint32, reply func(int32)) func() uint32 {
			// Another receive takes the reply that woke the receiver, finds it too large and
			// leaves it at the head of the queue; the receiver then reads the next one.
			reply(8)
			var out Msg
			n, kr := Receive(context.Background(), port, 1, size, true, 0, &out)
			assert.Equal(t, int32(abi.MACH_RCV_TOO_LARGE), kr)
			assert.Equal(t, 105, n)
			return func() uint32 { return port }
		}},
	} {
		for _, poller := range []bool{false, true} {
			name := tc.name + "/epoll"
			if poller {
				name = tc.name + "/poller"
			}
			t.Run(name, func(t *testing.T) {
				readAfterWaitFollowsThePort(t, poller, size, tc)
			})
		}
	}
}

// readAfterWaitCase is a case of TestMessageReadAfterWaitFollowsThePort.
type readAfterWaitCase struct {
	name string
	// act runs on the receiver's goroutine (so it asserts, not requires), between its wait and
	// its read; reply sends one more reply on the lane, with the given id.
	act func(t *testing.T, port uint32, reply func(id int32)) (after func() uint32)
	// want is what the receive returns, and wantID the id of its message.
	want   int32
	wantID int32
}

// readAfterWaitFollowsThePort runs tc with a receive that waits on its port's epoll fd (with a
// timeout), or one that parks in Go's poller (blocking, beside another receiver that blocks its
// thread: crowded).
func readAfterWaitFollowsThePort(t *testing.T, poller bool, size SizeFunc, tc readAfterWaitCase) {
	// A port whose only channel is its lane, as a requester's reply port.
	port, lfd, toks := laneOnlyPort(t)
	reply := func(id int32) { laneReply(t, lfd, toks[id-7], id) }

	var after func() uint32
	acted := make(chan struct{})
	readAfterWaitHook = func(*rchan) {
		readAfterWaitHook = nil
		after = tc.act(t, port, reply)
		close(acted)
	}
	t.Cleanup(func() { readAfterWaitHook = nil })
	type result struct {
		kr int32
		id int32
	}
	got := make(chan result, 1)
	// A timeout: the receive waits in epoll, not in recvmsg (receiveDirect).
	timeout := time.Hour
	waiting := func() bool { return ThreadWaits() >= 1 }
	if poller {
		timeout = -1
		blockThread(t)
		parked := PollerWaits()
		waiting = func() bool { return PollerWaits() > parked }
	}
	go func() {
		var out Msg
		_, kr := Receive(context.Background(), port, 1<<20, size, false, timeout, &out)
		got <- result{kr, out.ID}
	}()
	// Reply once the receiver waits, so that the wait's end reads it.
	waitFor(t, "the receiver waits", waiting)
	reply(7)
	var r result
	select {
	case r = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the receiver did not return")
	}
	select {
	case <-acted:
	default:
		t.Fatal("the receive did not read its channel after its wait")
	}
	require.Equal(t, tc.want, r.kr)
	if tc.want == abi.MACH_MSG_SUCCESS {
		require.Equal(t, tc.wantID, r.id, "the message at the head first")
	}
	if after == nil {
		return
	}
	// What is left comes next: the reply the receive did not take.
	next := int32(7)
	if tc.want == abi.MACH_MSG_SUCCESS {
		next = 8
	}
	m, kr := tryReceiveNow(after())
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr, "the reply stays with the port")
	require.Equal(t, next, m.ID)
}

// blockThread has a receiver of a reply port of its own block its thread until the test ends,
// youngWait an hour: the process's other receives on reply ports park in Go's poller (crowded).
func blockThread(t *testing.T) {
	t.Helper()
	setYoungWait(t, time.Hour)
	quietThreads(t)
	blocker := replyPort(t)
	done := make(chan int32, 1)
	go func() {
		var out Msg
		_, kr := Receive(context.Background(), blocker, 1<<20, func(int, int, int) int { return 0 }, false, -1, &out)
		done <- kr
	}()
	waitFor(t, "the blocker blocks its thread", func() bool { return ThreadWaits() >= 1 })
	t.Cleanup(func() {
		Send(&Msg{Bits: dispCopySend, Remote: blocker, ID: 1}, -1)
		<-done
	})
}

// Receivers parked in Go's poller crowd a receive too, once there are as many as the process
// has Ps and the latest of them parked less than youngWait ago: the next receive on a reply port
// parks even with no thread blocked (their wake-ups keep every P busy). Parks older than that do
// not: the receive blocks its thread, as a single receiver does.
func TestParkedReceiversCrowd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		young time.Duration // youngWait once two receivers are parked
		parks bool
	}{
		{name: "recent parks", young: time.Hour, parks: true},
		{name: "old parks", young: time.Nanosecond, parks: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setYoungWait(t, time.Hour)
			// Two Ps, so that two parked receivers are as many (passScheduler reads GOMAXPROCS
			// again).
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
			procs.Store(2)
			t.Cleanup(func() { procs.Store(int32(runtime.GOMAXPROCS(0))) })
			ports := []uint32{replyPort(t), replyPort(t), replyPort(t), replyPort(t)}
			quietThreads(t)
			parked := PollerWaits()
			got := make(chan int32, len(ports))
			receive := func(p uint32) {
				go func() {
					var out Msg
					_, kr := Receive(context.Background(), p, 1<<20, func(int, int, int) int { return 0 }, false, -1, &out)
					got <- kr
				}()
			}
			serve := func(p uint32) {
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: p, ID: 1}, -1))
			}
			receive(ports[0])
			waitFor(t, "the first receiver blocks its thread", func() bool { return ThreadWaits() == 1 })
			receive(ports[1])
			receive(ports[2])
			waitFor(t, "two receivers park", func() bool { return PollerWaits()-parked == 2 })
			serve(ports[0])
			requireReturns(t, got, 1, abi.MACH_MSG_SUCCESS)
			quietThreads(t)
			youngWait.Store(int64(tc.young))

			receive(ports[3])
			if tc.parks {
				waitFor(t, "the fourth receiver parks", func() bool { return PollerWaits()-parked == 3 })
				assert.Equal(t, 0, ThreadWaits(), "receivers blocking a thread")
			} else {
				waitFor(t, "the fourth receiver blocks its thread", func() bool { return ThreadWaits() == 1 })
				assert.Equal(t, uint64(2), PollerWaits()-parked, "receivers parked")
			}
			for _, p := range ports[1:] {
				serve(p)
			}
			requireReturns(t, got, 3, abi.MACH_MSG_SUCCESS)
		})
	}
}
