//go:build linux

package emu

import (
	"context"
	"encoding/binary"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// mappedPages counts the pages of [addr, addr+size) that have a page table entry, from
// /proc/self/pagemap (bit 63, "present", is readable without privileges): a present page is
// written without a fault.
func mappedPages(t *testing.T, addr uintptr, size int) int {
	t.Helper()
	f, err := os.Open("/proc/self/pagemap")
	require.NoError(t, err)
	defer f.Close()
	page := uintptr(os.Getpagesize())
	entries := make([]byte, 8*((uintptr(size)+page-1)/page))
	_, err = f.ReadAt(entries, int64(addr/page*8))
	require.NoError(t, err)
	n := 0
	for i := 0; i < len(entries); i += 8 {
		if binary.LittleEndian.Uint64(entries[i:])&(1<<63) != 0 {
			n++
		}
	}
	return n
}

// minorFaults returns the page faults this thread has taken.
func minorFaults(t *testing.T) int64 {
	var ru unix.Rusage
	require.NoError(t, unix.Getrusage(unix.RUSAGE_THREAD, &ru))
	return ru.Minflt
}

// A region from VMAllocate is populated when it is made: every page is mapped writable, so
// filling it takes no page fault (a fresh memfd page fault costs more than copying the page on
// this project's machines), and it still reads as zeroes.
func TestVMAllocatePopulated(t *testing.T) {
	runtime.LockOSThread() // the fault count is this thread's
	defer runtime.UnlockOSThread()
	page := os.Getpagesize()
	for _, tc := range []struct {
		name string
		size int
	}{
		{"one page", page},
		{"1 MiB", 1 << 20},
		{"odd size", 3<<20 + 5*page},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, kr := VMAllocate(tc.size)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			defer VMDeallocate(addr, tc.size)
			require.Equal(t, tc.size/page, mappedPages(t, addr, tc.size), "every page is mapped before the first write")
			mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), addr)), tc.size)
			zero := true
			faults := minorFaults(t)
			for i := 0; i < len(mem); i += page {
				zero = zero && mem[i] == 0
				mem[i] = 1
			}
			faults = minorFaults(t) - faults
			require.True(t, zero, "vm_allocate memory is zero-filled")
			// A couple of faults are allowed for the race detector's shadow memory; a fault per
			// page is not (on one page the page map above tells).
			require.LessOrEqual(t, faults, int64(2+tc.size/page/16), "filling the region faulted page by page")
		})
	}
}

// The copy path's memfd holds exactly the data, sealed against every change, as the receiver's
// checkMemory requires.
func TestSealedMemfdExact(t *testing.T) {
	for _, size := range []int{1, 4096, 64<<10 + 3} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + 1)
		}
		fd, err := sealedMemfd(data)
		require.NoError(t, err)
		var st unix.Stat_t
		require.NoError(t, unix.Fstat(fd, &st))
		require.Equal(t, int64(size), st.Size)
		seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
		require.NoError(t, err)
		want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
		require.Equal(t, want, seals&want)
		got := make([]byte, size)
		n, err := unix.Pread(fd, got, 0)
		require.NoError(t, err)
		require.Equal(t, size, n)
		require.Equal(t, data, got)
		require.NoError(t, unix.Close(fd))
	}
}

// poolSlotsOf returns how many pooled memfds the channel behind a send right has.
func poolSlotsOf(t *testing.T, name uint32) int {
	t.Helper()
	sp.mu.Lock()
	e := sp.entries[name]
	sp.mu.Unlock()
	require.NotNil(t, e)
	pools.Lock()
	defer pools.Unlock()
	return len(pools.byChan[e.send])
}

// A pooled memfd is written again only when no message holds it: not while a message that
// carries it is in flight, nor while a receiver still holds what it received. Each message reads
// back exactly what was sent, however the sends and receives interleave, and once the earlier
// messages are gone the pool reuses its memfds instead of making more.
func TestPooledMemfdReuse(t *testing.T) {
	const size = 64 << 10
	warmUp(t)
	for _, tc := range []struct {
		name string
		// held is how many messages are sent before any is received.
		held int
	}{
		{"received and held", 1},
		{"in flight", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := openFDs(t)
			release := holdTrims(t)
			name, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(name, name, dispMakeSend))
			send := func(fill byte) {
				data := make([]byte, size)
				for i := range data {
					data[i] = fill
				}
				m := &Msg{Bits: dispCopySend, Remote: name, ID: 1,
					Descs: []Desc{{Memory: true, Data: data, Size: size, Copy: abi.MACH_MSG_VIRTUAL_COPY}}}
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(m, 0))
			}
			receive := func() []byte {
				var out Msg
				_, kr := Receive(context.Background(), name, 1<<20, func(int, int, int) int { return 1 << 20 }, false, 0, &out)
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
				require.Len(t, out.Descs, 1)
				return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), out.Descs[0].Addr)), out.Descs[0].Size)
			}
			allAre := func(b []byte, want byte) bool {
				for _, c := range b {
					if c != want {
						return false
					}
				}
				return true
			}
			var got [][]byte
			fill := byte('a')
			for round := 0; round < 3; round++ {
				var fills []byte
				for range tc.held {
					send(fill)
					fills = append(fills, fill)
					fill++
				}
				for _, f := range fills {
					got = append(got, receive())
					require.True(t, allAre(got[len(got)-1], f), "message %q reads what was sent", f)
				}
				// One more while the earlier ones are still held.
				send(fill)
				got = append(got, receive())
				require.True(t, allAre(got[len(got)-1], fill))
				for i, b := range got {
					require.True(t, allAre(b, byte('a'+i)), "held message %q did not change", 'a'+i)
				}
				fill++
			}
			require.LessOrEqual(t, poolSlotsOf(t, name), poolSlots)
			for _, b := range got {
				require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(uintptr(unsafe.Pointer(&b[0])), len(b)))
			}
			slots, pooled := poolSlotsOf(t, name), pooledSends.Load()
			for range 2 * poolSlots {
				send('z')
				b := receive()
				require.True(t, allAre(b, 'z'))
				require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(uintptr(unsafe.Pointer(&b[0])), len(b)))
			}
			require.Equal(t, slots, poolSlotsOf(t, name), "freed memfds are reused, not replaced")
			require.Equal(t, uint64(2*poolSlots), pooledSends.Load()-pooled, "every copy went through the pool")
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(name, abi.MACH_PORT_RIGHT_RECEIVE, -1))
			require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(name))
			release()
			require.Eventually(t, func() bool { return openFDs(t) <= before }, 5*time.Second, 10*time.Millisecond,
				"an idle pool closes its memfds")
		})
	}
}

// warmUp makes what the emulation keeps for the life of the process (its waiters), so that an fd
// count afterwards counts only what a test leaves.
func warmUp(t *testing.T) {
	name, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(name, name, dispMakeSend))
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: name, ID: 1}, 0))
	var out Msg
	_, kr = Receive(context.Background(), name, 1<<10, func(int, int, int) int { return 1 << 10 }, false, 0, &out)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
	require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(name, abi.MACH_PORT_RIGHT_RECEIVE, -1))
	require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(name))
}

// sendReceiveMem sends one out-of-line descriptor to a port of this process and receives it.
func sendReceiveMem(t *testing.T, name uint32, d Desc) []byte {
	t.Helper()
	m := &Msg{Bits: dispCopySend, Remote: name, ID: 1, Descs: []Desc{d}}
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(m, 0))
	var out Msg
	_, kr := Receive(context.Background(), name, 1<<20, func(int, int, int) int { return 1 << 20 }, false, 0, &out)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
	require.Len(t, out.Descs, 1)
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), out.Descs[0].Addr)), out.Descs[0].Size)
}

func newMemTestPort(t *testing.T) uint32 {
	t.Helper()
	name, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(name, name, dispMakeSend))
	t.Cleanup(func() {
		ModRefs(name, abi.MACH_PORT_RIGHT_RECEIVE, -1)
		Deallocate(name)
	})
	return name
}

// A region donated whole leaves its memfd writable through its sender's mapping (only new
// writers are sealed out; the mapping stays, recycled, for regions of poolMin and more): a
// receiver copies it, so what it received does not change when that sender writes on. Mapped,
// as before, it did.
func TestReceivedDonationIsACopy(t *testing.T) {
	idleClosed(t)
	name := newMemTestPort(t)
	for _, size := range []int{poolMin, 64 << 10, poolMax} {
		addr, kr := VMAllocate(size)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), addr)), size)
		for i := range mem {
			mem[i] = 'a'
		}
		got := sendReceiveMem(t, name, Desc{Memory: true, Addr: addr, Data: mem, Size: uint32(size), Dealloc: true,
			Copy: abi.MACH_MSG_VIRTUAL_COPY})
		require.False(t, isRegion(addr, uint32(size)), "the region went with the message")
		// The sender writes on through its mapping (a region of up to poolMax stays mapped).
		for i := range mem {
			mem[i] = 'X'
		}
		for i, c := range got {
			if c != 'a' {
				require.Failf(t, "received memory changed", "size %d: byte %d is %q after the sender wrote", size, i, c)
			}
		}
		require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(uintptr(unsafe.Pointer(&got[0])), len(got)))
	}
}

// Received copies are recycled: a copy deallocated whole serves a later message, whose memory
// still reads as exactly what was sent (the rest of its last page as zeroes); a copy deallocated
// in parts is never recycled with a hole in it.
func TestReceivedCopyRecycling(t *testing.T) {
	idleClosed(t)
	name := newMemTestPort(t)
	const size = 40<<10 + 123 // pooled, and not a whole number of pages
	send := func(fill byte) []byte {
		data := make([]byte, size)
		for i := range data {
			data[i] = fill
		}
		got := sendReceiveMem(t, name, Desc{Memory: true, Data: data, Size: size, Copy: abi.MACH_MSG_VIRTUAL_COPY})
		require.Equal(t, data, got)
		last := unsafe.Slice(&got[0], pageRound(size))[size:]
		require.Equal(t, make([]byte, len(last)), last, "the rest of the last page reads as zeroes")
		return got
	}
	// Fill the whole last page of a buffer, so that a recycled one would show it.
	first := send('a')
	addr := uintptr(unsafe.Pointer(&first[0]))
	full := unsafe.Slice(&first[0], pageRound(size))
	for i := range full {
		full[i] = 'Q'
	}
	require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(addr, size))
	second := send('b')
	require.Equal(t, addr, uintptr(unsafe.Pointer(&second[0])), "the deallocated copy was recycled")

	// Deallocated in two parts, the buffer is not recycled: later messages all arrive whole.
	page := int(pageSize)
	require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(addr+uintptr(page), size-page))
	require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(addr, page))
	var held [][]byte
	for i := range copyFreePerClass + 2 {
		held = append(held, send(byte('c'+i)))
	}
	for _, b := range held {
		require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(uintptr(unsafe.Pointer(&b[0])), len(b)))
	}
}

// pinningMemfd returns a memfdCreate for tests whose memfds are size bytes long with their first
// page held by a pipe (vmsplice takes a page reference, as in-flight I/O, page migration or a
// per-CPU LRU batch does for a while), so that sealing them with F_SEAL_WRITE waits in the
// kernel's memfd_wait_for_pins (mm/memfd.c) and then fails with EBUSY. The pipes close at the
// end of the test.
func pinningMemfd(t *testing.T, size int) func(string, int) (int, error) {
	return func(name string, flags int) (int, error) {
		fd, err := unix.MemfdCreate(name, flags)
		require.NoError(t, err)
		require.NoError(t, unix.Ftruncate(fd, int64(size)))
		mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		require.NoError(t, err)
		mem[0] = 1 // the page exists
		var p [2]int
		require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
		t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
		n, err := unix.Vmsplice(p[1], []unix.Iovec{{Base: &mem[0], Len: 1}}, 0)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		require.NoError(t, unix.Munmap(mem)) // no writable mapping left: only the pipe's reference
		return fd, nil
	}
}

// A copy whose memfd cannot be sealed against writes, because something else holds a reference
// to one of its pages for longer than the kernel waits (under load, this project's benchmarks
// saw MACH_SEND_NO_BUFFER from BenchmarkRegionSend/4MiB/copy), is still sent, sealed against new
// writers: nobody else can write it, the sender wrote it with pwrite and holds no mapping. The
// receiver treats it as memory a sender could still change, and reads exactly what was sent.
func TestSealWithPinnedPage(t *testing.T) {
	name := newMemTestPort(t)
	for _, size := range []int{8 << 10, 2 << 20} { // below and above the pool's sizes
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + 1)
		}
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			saved := memfdCreate
			memfdCreate = pinningMemfd(t, size)
			defer func() { memfdCreate = saved }()
			got := sendReceiveMem(t, name, Desc{Memory: true, Data: data, Size: uint32(size), Copy: abi.MACH_MSG_VIRTUAL_COPY})
			require.Equal(t, data, got)
			require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(uintptr(unsafe.Pointer(&got[0])), len(got)))
		})
	}
}

// The send-once rights on one lane go to one port, so their copies share the lane's pool: a
// server's replies to one requester reuse memfds instead of making one each. A send-once right
// with a channel of its own carries one message and does not pool.
func TestLaneRightsSharePool(t *testing.T) {
	idleClosed(t)
	data := make([]byte, 64<<10)
	l := &remoteLane{key: 1, fd: -1}
	pooled := pooledSends.Load()
	for i := range 3 {
		right := &sendChan{fd: -1, sendOnce: true, lane: l, token: uint64(i + 1)}
		s, ok := pooledMemfd(right, data)
		require.True(t, ok, "reply %d went through the lane's pool", i)
		s.done()
		unlockPooled(s.ro) // received and released: the memfd is free again
	}
	require.Equal(t, uint64(3), pooledSends.Load()-pooled)
	pools.Lock()
	slots := len(pools.byChan[l])
	pools.Unlock()
	require.Equal(t, 1, slots, "the replies reused one memfd")
	_, ok := pooledMemfd(&sendChan{fd: -1, sendOnce: true}, data)
	require.False(t, ok, "a send-once channel of its own does not pool")
}

// idleClosed makes the test wait, at its end, until the memfds it left to be recycled are closed
// (after poolIdle), so that the fd counts of the tests after it see none of them.
func idleClosed(t *testing.T) {
	warmUp(t)
	// A send-once right's hang-up monitor, which stays, is made by the first one.
	so, _, kr := ExtractRight(newTestPort(t, 0), dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(so))
	before := openFDs(t)
	t.Cleanup(func() {
		require.Eventually(t, func() bool { return openFDs(t) <= before }, 5*time.Second, 10*time.Millisecond,
			"the recycled memfds are closed once idle")
	})
}

// holdTrims keeps the idle memfds of pools and regions open until the test ends or calls the
// function it returns, so that a test of their reuse does not depend on reaching the next use
// within poolIdle (under load a test stalls for longer); they close poolIdle after that.
func holdTrims(t *testing.T) (release func()) {
	trimsHeld.Store(true)
	release = func() { trimsHeld.Store(false) }
	t.Cleanup(release)
	return release
}

// fill sets every byte of n bytes at addr to c.
func fill(addr uintptr, n int, c byte) []byte {
	mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), addr)), n)
	for i := range mem {
		mem[i] = c
	}
	return mem
}

// A region sent with deallocate leaves its memfd to be recycled: once its receiver lets go of
// it, the next region of that size is made of it, zeroed, without fresh pages. A receiver lets go
// of a region of up to poolMax at once (it copies it); one that maps a larger region holds the
// memfd until it deallocates the memory, and until then the memfd is not reused: what the
// receiver holds never changes.
func TestRegionMemfdRecycled(t *testing.T) {
	idleClosed(t)
	holdTrims(t)
	name := newMemTestPort(t)
	for _, size := range []int{64 << 10, poolMax, 3 << 20} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			send := func(c byte) []byte {
				addr, kr := VMAllocate(size)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				mem := fill(addr, size, c)
				return sendReceiveMem(t, name, Desc{Memory: true, Addr: addr, Data: mem, Size: uint32(size),
					Dealloc: true, Copy: abi.MACH_MSG_VIRTUAL_COPY})
			}
			held := send('a')
			recycled := recycledRegions.Load()
			again := send('b')
			if size > poolMax {
				require.Equal(t, recycled, recycledRegions.Load(), "a memfd a receiver maps is not reused")
			} else {
				require.Equal(t, recycled+1, recycledRegions.Load(), "a memfd its receiver copied is reused")
			}
			for i, c := range held {
				if c != 'a' {
					require.Failf(t, "held memory changed", "byte %d is %q", i, c)
				}
			}
			require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(uintptr(unsafe.Pointer(&held[0])), size))
			require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(uintptr(unsafe.Pointer(&again[0])), size))

			recycled = recycledRegions.Load()
			addr, kr := VMAllocate(size)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, recycled+1, recycledRegions.Load(), "a memfd nobody holds is reused")
			mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), addr)), pageRound(size))
			require.Equal(t, make([]byte, len(mem)), mem, "a recycled region is zeroed")
			require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(addr, size))
		})
	}
}

// A deallocated region larger than poolMax, which a receiver would map, cannot be written
// through its old address any more: as on Mach, writing it faults (reading it does not: see
// regionpool.go).
func TestDeallocatedLargeRegionFaults(t *testing.T) {
	idleClosed(t)
	holdTrims(t) // an idle memfd closed meanwhile would be unmapped: reading it would fault too
	const size = 2 << 20
	addr, kr := VMAllocate(size)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	mem := fill(addr, size, 'a')
	require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(addr, size))
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	faulted := func() (faulted bool) {
		defer func() { faulted = recover() != nil }()
		mem[size/2] = 'X'
		return false
	}()
	require.True(t, faulted, "writing a deallocated region faults")
	require.Equal(t, byte('a'), mem[size/2], "a deallocated region reads as it was left")
}

// Recycled memfds (a channel's pool, a region's) are readable by their owner only: a receiver of
// another user cannot reopen one through /proc/self/fd, which would escape the lock that keeps
// the sender from rewriting it, to read what is written there later.
func TestRecycledMemfdsOwnerOnly(t *testing.T) {
	idleClosed(t)
	mode := func(fd int) uint32 {
		var st unix.Stat_t
		require.NoError(t, unix.Fstat(fd, &st))
		return st.Mode & 0o7777
	}
	s, ok := pooledMemfd(&sendChan{fd: -1}, make([]byte, 64<<10))
	require.True(t, ok)
	require.Equal(t, uint32(0o400), mode(s.ro), "a pooled memfd")
	s.done()
	unlockPooled(s.ro)

	addr, kr := VMAllocate(64 << 10)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	regions.Lock()
	r := regions.byAddr[addr]
	regions.Unlock()
	require.Equal(t, uint32(0o400), mode(r.slot.fd), "a region's memfd")
	require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(addr, 64<<10))
}

// A pooled memfd used for a message that does not go (here: the queue is full and the send
// times out) is free again, so the next message reuses it: failed sends do not use up the pool.
// (The port is this process's: a channel send that fails unlocks its memfd in Send instead.)
func TestPooledMemfdUnlockedWhenNotSent(t *testing.T) {
	idleClosed(t)
	name := newTestPort(t, 1)
	msg := func(fill byte) *Msg {
		data := make([]byte, 64<<10)
		for i := range data {
			data[i] = fill
		}
		return &Msg{Bits: dispCopySend, Remote: name, ID: 1,
			Descs: []Desc{{Memory: true, Data: data, Size: uint32(len(data)), Copy: abi.MACH_MSG_VIRTUAL_COPY}}}
	}
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(msg('a'), 0))
	pooled := pooledSends.Load()
	for i := range 2 * poolSlots {
		require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(msg(byte('b'+i)), 0), "the queue is full")
	}
	require.Equal(t, uint64(2*poolSlots), pooledSends.Load()-pooled, "every attempt found a pooled memfd")
	// The port is this process's, so each message copies its memory as it is queued (deliverLocal,
	// copyReceived), and the queued one holds no memfd: the failed sends reused the one slot.
	require.Equal(t, 1, poolSlotsOf(t, name), "the queued message holds no memfd, the failed sends reused the first")
	got := receiveWithin(t, name)
	require.Len(t, got.Descs, 1)
	mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), got.Descs[0].Addr)), got.Descs[0].Size)
	require.Equal(t, msg('a').Descs[0].Data, mem, "the queued message kept what it carried")
	require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(got.Descs[0].Addr, int(got.Descs[0].Size)))
}

// A region deallocated twice, or in parts, never leaves a recycled memfd with a hole in its
// mapping: the next regions of that size are whole, zeroed and writable.
func TestRegionDeallocatedTwiceOrInParts(t *testing.T) {
	idleClosed(t)
	holdTrims(t) // the next regions of the size are made of the memfd it left, not fresh ones
	const size = 64 << 10
	page := int(pageSize)
	for _, tc := range []struct {
		name       string
		deallocate func(addr uintptr)
	}{
		{"twice", func(addr uintptr) {
			require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(addr, size))
			require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(addr, size))
		}},
		{"in parts", func(addr uintptr) {
			require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(addr+uintptr(page), size-page))
			require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(addr, page))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, kr := VMAllocate(size)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			fill(addr, size, 'a')
			tc.deallocate(addr)
			for range 2 {
				addr, kr := VMAllocate(size)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), addr)), size)
				require.Equal(t, make([]byte, size), mem, "a new region is zeroed")
				fill(addr, size, 'b') // and writable
				require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(addr, size))
			}
		})
	}
}
