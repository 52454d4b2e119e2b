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
// counts senders waiting for room (so the receiver only makes a futex call when one is). Senders
// wait on it with futexes, so the limit is Mach's (a message count across all senders), not a
// socket buffer's byte size.
type counter struct {
	fd      int
	mapOnce sync.Once
	mem     []byte // nil until the first use (a received right that never sends maps nothing)
	mapErr  error
}

// ensure maps the memfd on first use.
func (c *counter) ensure() error {
	c.mapOnce.Do(func() {
		var st unix.Stat_t
		if err := unix.Fstat(c.fd, &st); err != nil || st.Size < 4096 {
			c.mapErr = errMalformed // too small: touching it would raise SIGBUS
			return
		}
		c.mem, c.mapErr = unix.Mmap(c.fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	})
	return c.mapErr
}

func (c *counter) count() *int32   { return (*int32)(unsafe.Pointer(&c.mem[0])) }
func (c *counter) limit() *int32   { return (*int32)(unsafe.Pointer(&c.mem[4])) }
func (c *counter) waiting() *int32 { return (*int32)(unsafe.Pointer(&c.mem[8])) }

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
	c := &counter{fd: fd}
	if err := c.ensure(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	atomic.StoreInt32(c.limit(), int32(limit))
	return c, nil
}

func (c *counter) close() {
	if c == nil {
		return
	}
	if c.mem != nil {
		unix.Munmap(c.mem)
	}
	unix.Close(c.fd)
}

// acquire takes a queue slot, waiting up to timeout (negative: forever). It reports false on
// timeout. The counter must be mapped (ensure).
func (c *counter) acquire(timeout time.Duration) bool {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		n := atomic.LoadInt32(c.count())
		if n < atomic.LoadInt32(c.limit()) {
			if atomic.CompareAndSwapInt32(c.count(), n, n+1) {
				return true
			}
			continue
		}
		var ts *unix.Timespec
		if timeout >= 0 {
			left := time.Until(deadline)
			if left <= 0 {
				return false
			}
			t := unix.NsecToTimespec(left.Nanoseconds())
			ts = &t
		}
		atomic.AddInt32(c.waiting(), 1)
		futex(c.count(), futexWait, n, ts)
		atomic.AddInt32(c.waiting(), -1)
	}
}

// release frees a slot after the receiver dequeued a message.
func (c *counter) release() {
	if atomic.AddInt32(c.count(), -1) < 0 {
		atomic.StoreInt32(c.count(), 0) // a hostile sender skipped acquire
	}
	if atomic.LoadInt32(c.waiting()) > 0 {
		futex(c.count(), futexWake, 1<<30, nil)
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
