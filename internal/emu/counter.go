//go:build linux

package emu

import (
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// counter is a port's queue count, shared by the receiver and every sender of the port through
// a 4 KiB memfd mapping: word 0 counts queued messages, word 1 holds the queue limit. Senders
// wait on it with futexes, so the limit is Mach's (a message count across all senders), not a
// socket buffer's byte size.
type counter struct {
	fd  int
	mem []byte
}

func (c *counter) count() *int32 { return (*int32)(unsafe.Pointer(&c.mem[0])) }
func (c *counter) limit() *int32 { return (*int32)(unsafe.Pointer(&c.mem[4])) }

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
	c, err := mapCounter(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	atomic.StoreInt32(c.limit(), int32(limit))
	return c, nil
}

// mapCounter maps a counter memfd; it takes ownership of fd.
func mapCounter(fd int) (*counter, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Size < 8 {
		return nil, errMalformed
	}
	mem, err := unix.Mmap(fd, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return &counter{fd: fd, mem: mem}, nil
}

func (c *counter) close() {
	if c == nil {
		return
	}
	unix.Munmap(c.mem)
	unix.Close(c.fd)
}

// acquire takes a queue slot, waiting up to timeout (negative: forever). It reports false on
// timeout.
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
		futex(c.count(), futexWait, n, ts)
	}
}

// release frees a slot after the receiver dequeued a message.
func (c *counter) release() {
	if atomic.AddInt32(c.count(), -1) < 0 {
		atomic.StoreInt32(c.count(), 0) // a hostile sender skipped acquire
	}
	futex(c.count(), futexWake, 1<<30, nil)
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
