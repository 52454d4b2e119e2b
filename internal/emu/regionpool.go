//go:build linux

package emu

import (
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"golang.org/x/sys/unix"
)

// The memfds behind VMAllocate's regions are recycled: on this project's machines a fresh memfd
// page costs far more than zeroing it (allocating, charging and freeing 1 MiB of shmem pages
// takes about 400 to 800 µs, clearing them 10 µs), so a region made, filled and sent with
// deallocate lost to copying the same bytes twice.
//
// A region's memfd is mapped shared and writable once, populated, sealed against shrinking,
// growing and new writers (F_SEAL_FUTURE_WRITE: its own mapping keeps writing), and readable by
// its owner only (mode 0400: a receiver of another user cannot reopen it through
// /proc/self/fd to escape the lock below; a process of the same user can open the sender's fds
// through /proc/PID/fd anyway). Sending the region with deallocate hands the receiver a new
// read-only open file description of it, locked for reading (an OFD lock, as a pooled copy's:
// mempool.go); the receiver holds the lock while it holds the memory. Deallocating a region keeps
// its memfd, and VMAllocate takes it again, zeroed, only once no lock is left, so no receiver
// ever sees memory it accepted change.
//
// A deallocated region larger than poolMax is made read-only (writing it faults, as touching it
// does on Mach), since its receiver maps it: a stale write would change what the receiver holds.
// Not PROT_NONE, which would fault reads too: on this project's machines (a guest whose page
// tables the hypervisor shadows) a page whose entry was made not-present costs about 4 µs at its
// next touch, so zeroing a recycled 4 MiB region after PROT_NONE and back took 5 to 6.5 ms, as
// much as making it afresh, against about 0.6 ms after PROT_READ and back (entries kept present,
// only write-protected). A smaller one stays mapped and writable: its receiver copied it as it
// arrived, and mprotect there and back costs about what recycling saves; touching it after
// deallocation does not fault, it is the emulation's memory again. Idle memfds are closed after
// poolIdle. Regions smaller than poolMin are not kept: their pages cost little, and the
// emulation's own small allocations (mach_port_names' arrays through the libSystem double) come
// and go all the time.
const (
	regionFreeMax   = 8        // idle region memfds kept
	regionFreeBytes = 64 << 20 // bytes in idle region memfds kept
)

// regionSlot is a region's memfd and its one mapping.
type regionSlot struct {
	fd   int
	addr uintptr
	size int // bytes mapped: the region's size rounded up to whole pages
}

// recycledRegions counts the regions VMAllocate made of a recycled memfd.
var recycledRegions atomic.Uint64

var regionFree struct {
	sync.Mutex
	slots []*regionSlot
	bytes int
	used  time.Time
	timer *time.Timer
}

// newRegionSlot makes a populated, sealed region memfd of size bytes (rounded up to pages).
func newRegionSlot(size int) (*regionSlot, int32) {
	size = pageRound(size)
	fd, err := unix.MemfdCreate("machport-region", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, abi.KERN_RESOURCE_SHORTAGE
	}
	// fallocate gives the memfd all its pages in one call, cheaper than a fault each.
	if err := unix.Fallocate(fd, 0, 0, int64(size)); err != nil {
		unix.Close(fd)
		return nil, abi.KERN_NO_SPACE
	}
	addr, _, errno := unix.Syscall6(unix.SYS_MMAP, 0, uintptr(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_SHARED, uintptr(fd), 0)
	if errno != 0 {
		unix.Close(fd)
		return nil, abi.KERN_NO_SPACE
	}
	s := &regionSlot{fd: fd, addr: addr, size: size}
	// Sealed after mapping: F_SEAL_FUTURE_WRITE refuses new writable mappings, this one stays.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS,
		unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_FUTURE_WRITE|unix.F_SEAL_SEAL); err != nil {
		closeRegionSlot(s)
		return nil, abi.KERN_RESOURCE_SHORTAGE
	}
	if err := unix.Fchmod(fd, 0o400); err != nil {
		closeRegionSlot(s)
		return nil, abi.KERN_RESOURCE_SHORTAGE
	}
	// Map the pages writable now, so that filling the region takes no fault. Not MAP_POPULATE on
	// the mmap: that allocates the pages one fault at a time, and measured slower than not
	// populating at all on this project's 6.18 kernel (fallocate and then populating, faster).
	// Without MADV_POPULATE_WRITE (Linux before 5.14) the pages still exist, and only mapping
	// them faults.
	unix.Syscall(unix.SYS_MADVISE, addr, uintptr(size), unix.MADV_POPULATE_WRITE)
	return s, abi.KERN_SUCCESS
}

// takeRegionSlot returns an idle region memfd of size bytes (rounded up to pages) that no
// receiver holds any more, zeroed and writable again; nil if there is none.
func takeRegionSlot(size int) *regionSlot {
	size = pageRound(size)
	if size < poolMin {
		return nil
	}
	regionFree.Lock()
	var s *regionSlot
	for i, c := range regionFree.slots {
		if c.size == size && unlocked(c.fd) {
			s = c
			regionFree.slots = append(regionFree.slots[:i], regionFree.slots[i+1:]...)
			regionFree.bytes -= c.size
			break
		}
	}
	regionFree.Unlock()
	if s == nil {
		return nil
	}
	// The mapping was made before the seal, so it may be writable again.
	if s.size > poolMax {
		if _, _, errno := unix.Syscall(unix.SYS_MPROTECT, s.addr, uintptr(s.size), unix.PROT_READ|unix.PROT_WRITE); errno != 0 {
			closeRegionSlot(s)
			return nil
		}
	}
	clear(unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), s.addr)), s.size))
	recycledRegions.Add(1)
	return s
}

// freeRegionSlot takes back the memfd of a deallocated region: the mapping of one larger than
// poolMax is made read-only, and the memfd kept for a later VMAllocate, or closed when enough
// are kept.
func freeRegionSlot(s *regionSlot) unix.Errno {
	if s.size < poolMin {
		return closeRegionSlot(s)
	}
	if s.size > poolMax {
		if _, _, errno := unix.Syscall(unix.SYS_MPROTECT, s.addr, uintptr(s.size), unix.PROT_READ); errno != 0 {
			return closeRegionSlot(s)
		}
	}
	regionFree.Lock()
	if len(regionFree.slots) >= regionFreeMax || regionFree.bytes+s.size > regionFreeBytes {
		regionFree.Unlock()
		return closeRegionSlot(s)
	}
	regionFree.slots = append(regionFree.slots, s)
	regionFree.bytes += s.size
	regionFree.used = time.Now()
	if regionFree.timer == nil {
		regionFree.timer = time.AfterFunc(poolIdle, trimRegions)
	}
	regionFree.Unlock()
	return 0
}

// closeRegionSlot unmaps a region memfd and closes it.
func closeRegionSlot(s *regionSlot) unix.Errno {
	errno := unmap(s.addr, s.size)
	unix.Close(s.fd)
	return errno
}

// trimRegions closes the idle region memfds once none was freed for poolIdle.
func trimRegions() {
	regionFree.Lock()
	if time.Since(regionFree.used) < poolIdle || trimsHeld.Load() {
		regionFree.timer.Reset(poolIdle)
		regionFree.Unlock()
		return
	}
	slots := regionFree.slots
	regionFree.slots, regionFree.bytes, regionFree.timer = nil, 0, nil
	regionFree.Unlock()
	for _, s := range slots {
		closeRegionSlot(s)
	}
}

// forgetRegionsIn handles a deallocation of [addr, addr+size) that is not of a whole region: a
// region it cuts into is no longer recycled (its memfd closes; what is left of its mapping stays
// the caller's memory, deallocated as any other), and an idle memfd it touches (a region
// deallocated twice) is closed, so that no recycled region ever has a hole in it.
func forgetRegionsIn(addr uintptr, size int) {
	end := addr + uintptr(size)
	touches := func(s *regionSlot) bool { return addr < s.addr+uintptr(s.size) && s.addr < end }
	regions.Lock()
	for a, r := range regions.byAddr {
		if touches(r.slot) {
			delete(regions.byAddr, a)
			unix.Close(r.slot.fd)
		}
	}
	regions.Unlock()
	regionFree.Lock()
	var gone []*regionSlot
	kept := regionFree.slots[:0]
	for _, s := range regionFree.slots {
		if touches(s) {
			gone = append(gone, s)
			regionFree.bytes -= s.size
		} else {
			kept = append(kept, s)
		}
	}
	clear(regionFree.slots[len(kept):])
	regionFree.slots = kept
	regionFree.Unlock()
	for _, s := range gone {
		closeRegionSlot(s)
	}
}
