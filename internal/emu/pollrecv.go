//go:build linux

package emu

import (
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A blocking receive that waits in recvmsg (receiveDirect) first polls its channel for up to
// pollBudget when its messages have been coming soon after it started waiting, as a reply does.
// On a machine with more than one CPU, a reply to a process whose CPU has gone idle waits for that
// CPU to wake, and in a virtual machine whose idle vCPUs halt, the hypervisor's wake-up takes tens
// of microseconds: on this project's 2-vCPU KVM guests a 64-byte request/reply took about 24 µs
// blocking against 9 µs polling, beside 10 to 12 µs for a Go SOCK_SEQPACKET ping-pong, and 64 KiB
// out of line came back in 33 µs for some round trips and 110 to 140 µs for a third of them
// (BenchmarkRequestReply, BenchmarkOutOfLine). A polling receiver keeps its CPU awake, so the reply
// finds it running. It costs CPU while it polls, so it polls only:
//   - with more than one CPU and GOMAXPROCS above 1 (on one, polling only delays the sender; the
//     process reads GOMAXPROCS again at each pass through the scheduler, at most 5 ms apart);
//   - as the process's one receiver polling at the time (pollingNow), and while none is parked
//     in Go's poller (many receivers waiting for replies at once park there; the replies of the
//     others could then wait for this one's CPU). Receivers blocked in system calls cost no CPU:
//     a process that serves several ports (machping's bench server: a raw service and a
//     CFMessagePort one) polls for the one that is busy, whose waits are short, and not for the
//     idle ones, whose waits are long;
//   - while its port's last wait ended within pollWindow, and polls mostly succeed: each poll that
//     ends without a message counts one miss, each that gets one takes one off (never below
//     zero, so hits do not bank credit for later misses), and at pollMisses the port's receives
//     block at once for the next pollRest receives.
//
// Between two reads it yields its CPU (sched_yield), so that a thread that shares the CPU (the
// sender, when the kernel put both on one) runs first. A receiver woken for something else
// meanwhile (wakeDirect) stops polling at once.
const (
	pollMisses = 4
	pollRest   = 64
)

// pollBudget is how long a receive polls at most: 50 µs, the round trip of 64 KiB out of line
// here with both ends running (a 20 µs budget left that case's slow round trips, and made no
// difference to the 64-byte one). pollWindow is how soon the port's last wait must have ended:
// 100 µs. In ns; SetPolling changes them, and a budget of 0 turns polling off.
var pollBudget, pollWindow atomic.Int64

func init() {
	pollBudget.Store(int64(50 * time.Microsecond))
	pollWindow.Store(int64(100 * time.Microsecond))
}

// SetPolling sets how long a receive polls at most and how soon its port's last wait must have
// ended for it to poll (budget 0: never), for tests; restore puts the previous values back.
func SetPolling(budget, window time.Duration) (restore func()) {
	b, w := pollBudget.Swap(int64(budget)), pollWindow.Swap(int64(window))
	return func() { pollBudget.Store(b); pollWindow.Store(w) }
}

var multiCPU = runtime.NumCPU() > 1

// polls and pollHits count the receives that polled and those of them that got a message, for
// tests.
var polls, pollHits atomic.Uint64

// pollRecord is a port's record of its receives' polling (receiveDirect). Guarded by sp.mu.
type pollRecord struct {
	lastWait time.Duration // how long the port's last direct wait took
	misses   int           // polls that missed, less those that hit (not below 0), since the last rest
	rest     int           // receives left that block without polling
}

// next reports whether a direct wait about to start polls first, and if so claims the
// process's one poll (pollingNow), which the caller gives back with pollDone. Called with
// sp.mu held.
func (st *pollRecord) next() bool {
	return pollAllowed() && st.wants() && pollingNow.CompareAndSwap(false, true)
}

// pollingNow says a receive of this process is polling (one at a time).
var pollingNow atomic.Bool

// pollDone gives back the poll next claimed.
func pollDone() { pollingNow.Store(false) }

// pollAllowed reports whether this process's receiver about to wait may poll: polling is on,
// there is more than one CPU and more than one P, and no receiver of the process is parked in
// Go's poller.
func pollAllowed() bool {
	return pollBudget.Load() > 0 && multiCPU && procs.Load() > 1 && parkedNow.Load() == 0
}

// wants reports whether the port's receives poll now, by its record: not while it rests, and only
// when its last wait ended within pollWindow.
func (st *pollRecord) wants() bool {
	if st.rest > 0 {
		st.rest--
		return false
	}
	return st.lastWait > 0 && st.lastWait <= time.Duration(pollWindow.Load())
}

// done records how long a direct wait took and, if it polled, whether the poll got the message
// (hit). Called with sp.mu held.
func (st *pollRecord) done(polled, hit bool, waited time.Duration) {
	st.lastWait = waited
	if !polled {
		return
	}
	polls.Add(1)
	if hit {
		pollHits.Add(1)
		st.misses = max(st.misses-1, 0)
		return
	}
	if st.misses++; st.misses >= pollMisses {
		st.misses, st.rest = 0, pollRest
	}
}

// pollRecv reads fd without blocking until a datagram comes, stop is set, or pollBudget has
// passed since start (since epoch); err is EAGAIN when nothing came.
func pollRecv(fd int, rx *rxBuf, stop *atomic.Bool, start time.Duration) (n, oobn, flags int, err error) {
	budget := time.Duration(pollBudget.Load())
	for {
		n, oobn, flags, err = recvmsg(fd, rx.data[:], rx.oob, unix.MSG_DONTWAIT)
		if err != unix.EAGAIN || stop.Load() || time.Since(epoch)-start >= budget {
			return n, oobn, flags, err
		}
		unix.RawSyscallNoError(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// Polls returns how many receives of this process polled their channel before blocking, and
// how many of them got their message that way, for tests.
func Polls() (n, hits uint64) { return polls.Load(), pollHits.Load() }
