//go:build linux

package emu

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A receiver copies out-of-line memory of up to poolMax bytes that a sender could still change
// or shrink (a memfd not sealed against both: a pooled memfd, a region donated whole, or any
// other shmem file a peer sends) instead of mapping it: what it holds then is its own, whatever
// the sender does later, and the memfd's lock is released as soon as the message is accepted,
// so the sender's pool reuses it at once. The copies go into anonymous memory recycled from
// earlier received messages: fresh pages cost far more than the copy on this project's
// machines, and received memory is deallocated as often as it arrives. Memory sealed against
// writes and shrinking (F_SEAL_WRITE, F_SEAL_SHRINK) is mapped as before: nobody can change it.
const (
	copyFreePerClass = 4  // recycled buffers kept per size class
	copyLiveMax      = 64 // recycled copies handed out at once; more go into fresh memory
)

// copyBuf is a recycled buffer handed out for a received message.
type copyBuf struct {
	class int    // bytes mapped
	size  uint32 // bytes received
}

var copies struct {
	sync.Mutex
	free map[int][]uintptr
	live map[uintptr]copyBuf
}

func pageRound(n int) int { return (n + int(pageSize) - 1) &^ (int(pageSize) - 1) }

// copiedIn reports whether a received memfd of size bytes with these seals is copied in
// (copyReceived) rather than mapped: one of up to poolMax bytes that its sender could still
// write or shrink (not both F_SEAL_WRITE and F_SEAL_SHRINK).
func copiedIn(seals int, size uint32) bool {
	const immutable = unix.F_SEAL_WRITE | unix.F_SEAL_SHRINK
	return size > 0 && size <= poolMax && seals&immutable != immutable
}

// copiedInFD is copiedIn for a memfd whose seals are not known yet: false if they cannot be read.
func copiedInFD(fd int, size uint32) bool {
	seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	return err == nil && copiedIn(seals, size)
}

// copyReceived copies a received memfd of size bytes (at most poolMax) that its sender could
// still change into memory of this process: a recycled buffer, or fresh memory once copyLiveMax
// of those are out. It returns 0 when the memfd could not be read in full (a sender that sent
// less, or shrank it meanwhile: no seal or size is checked before, see checkMemory) or no memory
// was left for the copy; the memfd's lock is released either way.
func copyReceived(fd int, size uint32) (addr uintptr) {
	class := int(pageSize)
	for class < int(size) {
		class *= 2
	}
	addr = takeCopyBuf(class, size)
	fresh := addr == 0
	if fresh {
		// copyLiveMax copies are out: this one goes into fresh memory, which VMDeallocate
		// unmaps. Mapping the memfd instead would keep a pooled memfd's lock for good (its
		// description lives on in the sender's pool, so unmapping does not drop it), and
		// unlocking it while mapped would let the sender rewrite memory this receiver accepted.
		class = pageRound(int(size))
		a, _, errno := unix.Syscall6(unix.SYS_MMAP, 0, uintptr(class), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE, ^uintptr(0), 0)
		if errno != 0 {
			unlockPooled(fd)
			return 0
		}
		addr = a
	}
	buf := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), addr)), class)
	for off := 0; off < int(size); {
		var n int
		err := ignoringEINTR(func() (err error) { n, err = unix.Pread(fd, buf[off:size], int64(off)); return err })
		if err != nil || n == 0 {
			if fresh {
				unix.Syscall(unix.SYS_MUNMAP, addr, uintptr(class), 0)
			} else {
				releaseCopy(addr, int(size))
			}
			unlockPooled(fd)
			return 0
		}
		off += n
	}
	clear(buf[size:pageRound(int(size))]) // the rest of the last page reads as zeroes, as mapped
	// The copy is ours: a pooled memfd's sender may write it again (mempool.go). Its description
	// lives on in the sender, so closing the fd would not release the lock.
	unlockPooled(fd)
	return addr
}

// takeCopyBuf returns a recycled buffer of class bytes, or a new one; 0 when copyLiveMax copies
// are out or no memory could be mapped.
func takeCopyBuf(class int, size uint32) uintptr {
	copies.Lock()
	defer copies.Unlock()
	if copies.live == nil {
		copies.free, copies.live = map[int][]uintptr{}, map[uintptr]copyBuf{}
	}
	if len(copies.live) >= copyLiveMax {
		return 0
	}
	var addr uintptr
	if free := copies.free[class]; len(free) > 0 {
		addr = free[len(free)-1]
		copies.free[class] = free[:len(free)-1]
	} else {
		a, _, errno := unix.Syscall6(unix.SYS_MMAP, 0, uintptr(class), unix.PROT_READ|unix.PROT_WRITE,
			unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE, ^uintptr(0), 0)
		if errno != 0 {
			return 0
		}
		addr = a
	}
	copies.live[addr] = copyBuf{class: class, size: size}
	return addr
}

// releaseCopy deallocates [addr, addr+size) if it touches a copy handed out by copyReceived, and
// reports whether it did. A whole copy goes back to be recycled; part of one is unmapped, and that
// copy is never recycled (its slack past the received size is unmapped with it).
func releaseCopy(addr uintptr, size int) (bool, unix.Errno) {
	copies.Lock()
	defer copies.Unlock()
	if b, ok := copies.live[addr]; ok && pageRound(size) == pageRound(int(b.size)) {
		delete(copies.live, addr)
		if len(copies.free[b.class]) < copyFreePerClass {
			copies.free[b.class] = append(copies.free[b.class], addr)
			return true, 0
		}
		_, _, errno := unix.Syscall(unix.SYS_MUNMAP, addr, uintptr(b.class), 0)
		return true, errno
	}
	end := addr + uintptr(size)
	for a, b := range copies.live {
		if addr < a+uintptr(b.class) && a < end {
			delete(copies.live, a)
			if slack := a + uintptr(pageRound(int(b.size))); slack < a+uintptr(b.class) {
				unix.Syscall(unix.SYS_MUNMAP, slack, a+uintptr(b.class)-slack, 0)
			}
		}
	}
	return false, 0 // the caller unmaps the range itself
}
