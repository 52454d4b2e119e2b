//go:build linux

package emu

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Out-of-line copies of poolMin to poolMax bytes go through memfds reused from a pool instead of
// a fresh memfd each: on this project's machines a fresh memfd page costs more to allocate, map
// and free than copying it many times (a 64 KiB memfd costs about 40 µs, its copy 2 µs).
//
// A pooled memfd stays mapped shared and writable in the sender, sealed against shrinking,
// growing and new writers (F_SEAL_FUTURE_WRITE: the sender's own mapping keeps writing, as with a
// donated region). The sender also keeps a read-only open file description of it, which each
// message carries, locked for reading (an OFD lock) by the sender before it sends: the lock stays
// while the message is in flight, and the receiver, which copies memory of this size as it
// arrives (rxcopy.go), unlocks it once it has its copy (the description itself lives on in the
// sender, so closing the fd would not release the lock). The sender writes a pooled memfd again
// only when no lock is left (F_OFD_GETLK), so a receiver never sees the memory it accepted
// change. A send that fails, or a message dropped unsent, unlocks it again. A slot stays busy
// while its send is in progress (it may wait for room with the description in its message), so
// trimPools never closes a description a send is about to pass. Keeping the description saves
// reopening the memfd through /proc for each message (3 to 5 µs here).
//
// A pool serves one channel only: a receiver that keeps a pooled memfd (a reopen through /proc,
// which escapes the lock; a dup keeps the lock) can read what is written there later, and on one
// channel that is only what is sent to it anyway. The memfd is readable by its owner only (mode
// 0400), so only a receiver of the same user can reopen it. A lane (lane.go) is one channel into one port
// for all the send-once rights it carries, so they share its pool: replies to one requester reuse
// memfds. Other send-once channels carry one message, so they do not pool. A pool the sender leaves idle for poolIdle is closed, so it holds no fd or mapping
// for long (leak checks wait for them).
const (
	poolMin      = 32 << 10
	poolMax      = 1 << 20
	poolSlots    = 4  // memfds per channel: messages in flight before falling back to fresh memfds
	poolChannels = 16 // channels with a pool
	poolIdle     = 200 * time.Millisecond
)

// poolSlot is one pooled memfd and the sender's mapping of it.
type poolSlot struct {
	fd   int
	ro   int // the read-only description messages carry
	addr uintptr
	cap  int
	busy bool // a send is writing it or sending it (pooledMemfd, done)
}

// pooledSends counts the out-of-line copies that went through a pooled memfd.
var pooledSends atomic.Uint64

// trimsHeld keeps trimPools and trimRegions from closing idle memfds, for tests that check their
// reuse: a test stalled for poolIdle between a free and the next use (a loaded machine) would
// otherwise find them closed.
var trimsHeld atomic.Bool

var pools struct {
	sync.Mutex
	byChan map[poolKey][]*poolSlot
	used   map[poolKey]time.Time
	timer  *time.Timer
}

// poolKey names the channel a pool serves: a *sendChan, or the *remoteLane of a lane right.
type poolKey any

// poolOf returns the key of dest's pool, nil when dest does not pool.
func poolOf(dest *sendChan) poolKey {
	switch {
	case dest == nil:
		return nil
	case dest.lane != nil:
		return dest.lane
	case dest.sendOnce:
		return nil
	}
	return dest
}

// pooledMemfd copies data into a pooled memfd of dest's pool and returns its slot, whose
// read-only description (ro) the message carries, locked: the fd stays the pool's (the caller
// does not close it), and the caller unlocks it if the message is not sent (unlockPooled). The
// slot stays busy until the caller's send is over (done): a send may wait for room in the
// queue or the socket with the description in its message, and trimPools must not close it
// under that send. ok is false when data does not pool (size, a send-once channel, every slot
// still locked by receivers, or a failure): the caller makes a fresh sealed memfd.
func pooledMemfd(dest *sendChan, data []byte) (s *poolSlot, ok bool) {
	key := poolOf(dest)
	if len(data) < poolMin || len(data) > poolMax || key == nil {
		return nil, false
	}
	s = acquireSlot(key, len(data))
	if s == nil {
		return nil, false
	}
	copy(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), s.addr)), s.cap), data)
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(uintptr(s.ro), unix.F_OFD_SETLK, &lk); err != nil {
		s.done()
		return nil, false
	}
	pooledSends.Add(1)
	return s, true
}

// done ends the send that used the slot: from now on its lock alone (held while the message is
// in flight) keeps it from being written again, and trimPools may close it.
func (s *poolSlot) done() {
	pools.Lock()
	s.busy = false
	pools.Unlock()
}

// unlockPooled releases the lock pooledMemfd took on a description whose message was not sent.
func unlockPooled(fd int) {
	lk := unix.Flock_t{Type: unix.F_UNLCK, Whence: 0, Start: 0, Len: 0}
	unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
}

// acquireSlot returns an idle slot of the pool key names of at least size bytes, marked busy, making
// one if the pool has room; nil if none is free.
func acquireSlot(dest poolKey, size int) *poolSlot {
	pools.Lock()
	defer pools.Unlock()
	if pools.byChan == nil {
		pools.byChan, pools.used = map[poolKey][]*poolSlot{}, map[poolKey]time.Time{}
	}
	slots, known := pools.byChan[dest]
	if !known && len(pools.byChan) >= poolChannels {
		return nil
	}
	pools.used[dest] = time.Now()
	if pools.timer == nil {
		pools.timer = time.AfterFunc(poolIdle, trimPools)
	}
	for _, s := range slots {
		if !s.busy && s.cap >= size && unlocked(s.fd) {
			s.busy = true
			return s
		}
	}
	if len(slots) >= poolSlots {
		return nil
	}
	s := newSlot(size)
	if s == nil {
		return nil
	}
	s.busy = true
	pools.byChan[dest] = append(slots, s)
	return s
}

// newSlot makes a pooled memfd of size rounded up to a power of two, mapped and populated.
func newSlot(size int) *poolSlot {
	c := poolMin
	for c < size {
		c *= 2
	}
	fd, err := unix.MemfdCreate("machport-pool", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil
	}
	if unix.Ftruncate(fd, int64(c)) != nil {
		unix.Close(fd)
		return nil
	}
	addr, _, errno := unix.Syscall6(unix.SYS_MMAP, 0, uintptr(c), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED|unix.MAP_POPULATE, uintptr(fd), 0)
	if errno != 0 {
		unix.Close(fd)
		return nil
	}
	// Sealed after mapping: F_SEAL_FUTURE_WRITE refuses new writable mappings, this one stays.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS,
		unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_FUTURE_WRITE|unix.F_SEAL_SEAL); err != nil {
		unix.Syscall(unix.SYS_MUNMAP, addr, uintptr(c), 0)
		unix.Close(fd)
		return nil
	}
	// Readable by its owner only: a receiver of another user cannot reopen the memfd through
	// /proc/self/fd (a new description, without the lock) to read what is written there later.
	if err := unix.Fchmod(fd, 0o400); err != nil {
		unix.Syscall(unix.SYS_MUNMAP, addr, uintptr(c), 0)
		unix.Close(fd)
		return nil
	}
	ro, err := reopen(fd)
	if err != nil {
		unix.Syscall(unix.SYS_MUNMAP, addr, uintptr(c), 0)
		unix.Close(fd)
		return nil
	}
	return &poolSlot{fd: fd, ro: ro, addr: addr, cap: c}
}

// unlocked reports whether no message's description of the memfd is left (F_OFD_GETLK finds no
// lock that a write lock over the whole file would conflict with).
func unlocked(fd int) bool {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return false
	}
	return lk.Type == unix.F_UNLCK
}

// reopen opens a new read-only description of fd through /proc.
func reopen(fd int) (int, error) {
	var path [32]byte
	p := strconv.AppendInt(append(path[:0], "/proc/self/fd/"...), int64(fd), 10)
	var r int
	err := ignoringEINTR(func() (err error) {
		r, err = unix.Open(string(p), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		return err
	})
	return r, err
}

// reopenLocked opens a new read-only description of fd through /proc and locks it for reading.
func reopenLocked(fd int) (int, error) {
	r, err := reopen(fd)
	if err != nil {
		return -1, err
	}
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(uintptr(r), unix.F_OFD_SETLK, &lk); err != nil {
		unix.Close(r)
		return -1, err
	}
	return r, nil
}

// trimPools closes the pools left idle for poolIdle, and runs again while any is left. Closing
// a slot a receiver still holds is safe: the sender only drops its own references.
func trimPools() {
	pools.Lock()
	defer pools.Unlock()
	if trimsHeld.Load() {
		pools.timer.Reset(poolIdle)
		return
	}
	now := time.Now()
	for c, slots := range pools.byChan {
		if now.Sub(pools.used[c]) < poolIdle {
			continue
		}
		kept := slots[:0]
		for _, s := range slots {
			if s.busy {
				kept = append(kept, s)
				continue
			}
			unix.Syscall(unix.SYS_MUNMAP, s.addr, uintptr(s.cap), 0)
			unix.Close(s.fd)
			unix.Close(s.ro) // a message in flight holds the description, and its lock, on its own
		}
		if len(kept) == 0 {
			delete(pools.byChan, c)
			delete(pools.used, c)
		} else {
			pools.byChan[c] = kept
		}
	}
	if len(pools.byChan) == 0 {
		pools.timer = nil
		return
	}
	pools.timer.Reset(poolIdle)
}
