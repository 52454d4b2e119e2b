package cfmessageport

import (
	"sync/atomic"
	"time"
)

// The receive turn of a server with several receive loops (ServerOptions.Concurrency > 1).
//
// Only the loop that holds the turn receives; the others wait for it on a channel, not in the
// kernel. Were all the loops to wait in the kernel at once, every message would wake several of
// them: the emulation's port is a level-triggered epoll fd, and epoll wakes one more waiter
// while an event stays ready (fs/eventpoll.c, ep_poll and ep_done_scan), so the woken loops
// fought over the emulation's lock and found nothing. With 64 loops on 2 cores,
// BenchmarkServerConcurrency served 0.7-0.84x the requests of one loop; a trace of the server
// put almost all its scheduling latency (18 s in 2 s) in that lock's hand-offs
// (sync.(*Mutex).Unlock, semrelease1), with 70 threads where one loop has 8. On Darwin, too,
// each loop blocked in mach_msg holds a thread.
//
// The loop that received a request keeps the turn while its handler runs, and takes the next
// message itself when the handler returns: with fast handlers one loop serves, as with
// Concurrency 1, and no goroutine is woken per request (handing the turn over at every request
// woke an idle thread of the runtime each time: 25-35% more server CPU per request than one
// loop). A handler that runs on across two ticks of the turn's timer (turnTick to 2*turnTick)
// gives the turn to a waiting loop, so that N slow requests still run N handlers at once. The
// timer ticks only while a handler holds the turn, and is not re-armed per request: a timer
// set per request made a system call each time (the runtime's netpollBreak, to wake its
// poller for the earlier deadline).
type turn struct {
	token   chan struct{} // holds the turn while no loop does
	armed   atomic.Uint64 // the number of the handler running while its loop holds the turn, or 0
	next    uint64        // the last handler number given; only the turn's holder touches it
	ticking atomic.Bool   // the timer is set
	seen    uint64        // the handler number the timer saw at its last tick; the timer's own
	timer   *time.Timer
}

// turnTick is the turn timer's period: a handler running longer than two of them certainly
// gives the turn away. An echo-like handler (microseconds) never does; a request queued
// behind a slow handler waits at most this long for another loop to receive it.
const turnTick = 100 * time.Microsecond

// newTurn makes the turn of a server with loops receive loops, or nil for one loop.
func newTurn(loops int) *turn {
	if loops <= 1 {
		return nil
	}
	t := &turn{token: make(chan struct{}, 1)}
	t.token <- struct{}{}
	t.timer = time.AfterFunc(time.Hour, t.tick)
	t.timer.Stop()
	return t
}

// stop stops the timer, once no loop runs.
func (t *turn) stop() {
	if t != nil {
		t.timer.Stop()
	}
}

// tick gives the turn away if the same handler held it at the last tick too, and ticks again
// while a handler holds it.
func (t *turn) tick() {
	if a := t.armed.Load(); a != 0 {
		if a != t.seen {
			t.seen = a
			t.timer.Reset(turnTick)
			return
		}
		if t.armed.CompareAndSwap(a, 0) {
			t.token <- struct{}{} // the handler's loop no longer holds it (handled)
		}
	}
	t.ticking.Store(false)
	// A handler that began just before ticking was cleared saw the timer still set: set it
	// for that one. (Either this load sees its armed, or it sees ticking cleared.)
	if t.armed.Load() != 0 && t.ticking.CompareAndSwap(false, true) {
		t.timer.Reset(turnTick)
	}
}

// loopTurn is one receive loop's part in the turn.
type loopTurn struct {
	t    *turn  // nil with one loop
	held bool   // this loop holds the turn
	mine uint64 // the number of this loop's handler running
}

// take waits for the turn, unless the loop holds it already.
func (l *loopTurn) take() {
	if l.t != nil && !l.held {
		<-l.t.token
		l.held = true
	}
}

// release gives the turn back, when the loop ends.
func (l *loopTurn) release() {
	if l.t != nil && l.held {
		l.held = false
		l.t.token <- struct{}{} // never blocks: the turn is one token, and this loop held it
	}
}

// handling is called as a handler starts, while the loop holds the turn: the timer may now
// give the turn away.
func (l *loopTurn) handling() {
	if l.t == nil {
		return
	}
	l.t.next++
	l.mine = l.t.next
	l.t.armed.Store(l.mine)
	if !l.t.ticking.Load() && l.t.ticking.CompareAndSwap(false, true) {
		l.t.timer.Reset(turnTick)
	}
}

// handled is called as the handler returns: the loop keeps the turn unless the timer gave it
// away meanwhile (armed decides which of the two has it).
func (l *loopTurn) handled() {
	if l.t != nil && !l.t.armed.CompareAndSwap(l.mine, 0) {
		l.held = false
	}
}
