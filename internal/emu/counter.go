//go:build linux

package emu

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// counter is a port's queue count, shared by the receiver and every sender of the port through
// a 4 KiB memfd mapping: word 0 counts queued messages, word 1 holds the queue limit, word 2
// counts senders waiting for room (so the receiver only makes a futex call when one is), word 3
// is set when the port died. Senders wait on it with futexes, so the limit is Mach's (a message
// count across all senders), not a socket buffer's byte size.
//
// In one process a counter is shared by the port and its local channels: refs counts them, and
// the last release unmaps it.
type counter struct {
	fd      int
	refs    atomic.Int32
	mapOnce sync.Once
	mem     []byte // nil until the first use (a received right that never sends maps nothing)
	mapErr  error
}

// newCounterRef wraps a counter memfd that came from another process.
func newCounterRef(fd int) *counter {
	c := &counter{fd: fd}
	c.refs.Store(1)
	return c
}

// ref adds a holder.
func (c *counter) ref() *counter { c.refs.Add(1); return c }

// ensure maps the memfd on first use.
func (c *counter) ensure() error {
	c.mapOnce.Do(func() {
		// A peer's memfd must be large enough and sealed against shrinking, or touching the
		// mapping later could raise SIGBUS.
		var st unix.Stat_t
		seals, err := unix.FcntlInt(uintptr(c.fd), unix.F_GET_SEALS, 0)
		if err != nil || seals&unix.F_SEAL_SHRINK == 0 || unix.Fstat(c.fd, &st) != nil || st.Size < 4096 {
			c.mapErr = errMalformed
			return
		}
		c.mem, c.mapErr = unix.Mmap(c.fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	})
	return c.mapErr
}

func (c *counter) count() *int32   { return (*int32)(unsafe.Pointer(&c.mem[0])) }
func (c *counter) limit() *int32   { return (*int32)(unsafe.Pointer(&c.mem[4])) }
func (c *counter) waiting() *int32 { return (*int32)(unsafe.Pointer(&c.mem[8])) }
func (c *counter) dead() *int32    { return (*int32)(unsafe.Pointer(&c.mem[12])) }

// kill marks the port dead and wakes every waiting sender.
func (c *counter) kill() {
	atomic.StoreInt32(c.dead(), 1)
	futex(c.count(), futexWake, 1<<30, nil)
}

func newCounter(limit uint32) (*counter, error) {
	fd, err := unix.MemfdCreate("machport-queue", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, err
	}
	if err := unix.Ftruncate(fd, 4096); err != nil {
		unix.Close(fd)
		return nil, err
	}
	_, _ = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL)
	c := newCounterRef(fd)
	if err := c.ensure(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	atomic.StoreInt32(c.limit(), int32(limit))
	return c, nil
}

func (c *counter) close() {
	if c == nil || c.refs.Add(-1) > 0 {
		return
	}
	if c.mem != nil {
		unix.Munmap(c.mem)
	}
	unix.Close(c.fd)
}

// Outcomes of acquire.
const (
	acquired = iota
	acquireTimedOut
	acquirePortDead        // the port was dead already
	acquirePortDiedWaiting // the port died while the sender waited for room
)

// deadCheckInterval bounds how long a sender waiting for room goes without checking whether the
// port's receiver is gone (a killed receiving process cannot wake it). A variable for tests,
// which make it long so that a lost wake-up shows as a sender that never sends.
var deadCheckInterval = 50 * time.Millisecond

// deadline is a send's or receive's timeout (negative: none), made a point in time by the first
// wait that needs it: a call that never waits reads no clock (about 90 ns a read on this
// machine, four of them per send before). xnu too starts a timeout when the thread must wait:
// ipc_mqueue_send and ipc_mqueue_receive_on_thread compute the deadline
// (clock_interval_to_deadline) only on the path that blocks.
type deadline struct {
	timeout time.Duration
	at      time.Time // zero until started
}

// left starts the deadline if it has not started, and returns the time left before it (the
// whole timeout the first time). Without a timeout it returns -1.
func (d *deadline) left() time.Duration {
	switch {
	case d.timeout < 0:
		return -1
	case d.timeout == 0:
		return 0
	case d.at.IsZero():
		d.at = time.Now().Add(d.timeout)
		return d.timeout
	}
	return time.Until(d.at)
}

// when starts the deadline if it has not started, and returns it (the zero time without a
// timeout).
func (d *deadline) when() time.Time {
	if d.timeout >= 0 && d.at.IsZero() {
		d.at = time.Now().Add(d.timeout)
	}
	return d.at
}

// acquire takes a queue slot, waiting up to dl (see deadline). alive is asked between
// waits whether the port's receiver still exists. The counter must be mapped (ensure).
//
// A freed slot wakes one waiting sender, as xnu's ipc_mqueue_release_msgcount wakes one thread
// (waking them all made every blocked sender of a busy port run for each message received, to
// find the queue full again). No wake-up is lost:
//   - release lowers the count before it wakes, and a waiter sleeps only while the count is
//     the full value it read (FUTEX_WAIT compares it), so a slot freed after the waiter looked
//     makes it look again at once;
//   - a woken waiter tries for a slot before it looks at its deadline, so it never leaves a
//     free slot behind with the wake-up it consumed; it finds none only when other senders hold
//     every slot, and the release of each of their messages wakes one again. (A send gives up
//     only at this deadline: mach.Send turns a context's deadline into a timeout, as mach_msg.)
//   - the port's death (kill) and a new limit (setLimit) wake every waiter.
func (c *counter) acquire(dl *deadline, alive func() bool) int {
	for {
		if atomic.LoadInt32(c.dead()) != 0 {
			return acquirePortDead
		}
		n := atomic.LoadInt32(c.count())
		if n < atomic.LoadInt32(c.limit()) {
			if atomic.CompareAndSwapInt32(c.count(), n, n+1) {
				return acquired
			}
			continue
		}
		wait := deadCheckInterval
		if dl.timeout >= 0 {
			left := dl.left()
			if left <= 0 {
				return acquireTimedOut
			}
			wait = min(wait, left)
		}
		t := unix.NsecToTimespec(wait.Nanoseconds())
		atomic.AddInt32(c.waiting(), 1)
		futex(c.count(), futexWait, n, &t)
		atomic.AddInt32(c.waiting(), -1)
		if atomic.LoadInt32(c.dead()) != 0 || !alive() {
			return acquirePortDiedWaiting
		}
	}
}

// release frees a slot after the receiver dequeued a message, and wakes one waiting sender.
func (c *counter) release() {
	if atomic.AddInt32(c.count(), -1) < 0 {
		atomic.StoreInt32(c.count(), 0) // a hostile sender skipped acquire
	}
	if atomic.LoadInt32(c.waiting()) > 0 {
		futex(c.count(), futexWake, 1, nil)
	}
}

// setLimit changes the limit and wakes every waiting sender.
func (c *counter) setLimit(limit uint32) {
	atomic.StoreInt32(c.limit(), int32(limit))
	futex(c.count(), futexWake, 1<<30, nil)
}

// Futex operations (linux/futex.h), shared (not FUTEX_PRIVATE_FLAG): the word is in a mapping
// other processes share.
const (
	futexWait = 0
	futexWake = 1
)

func futex(addr *int32, op int, val int32, ts *unix.Timespec) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(addr)), uintptr(op), uintptr(val),
		uintptr(unsafe.Pointer(ts)), 0, 0)
}
