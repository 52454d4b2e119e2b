//go:build linux

package emu

import (
	"encoding/binary"
	"os"
	"testing"
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

// A region from VMAllocate is populated when it is made: every page is mapped, so filling it
// does not fault page by page (a fresh memfd page fault costs about as much as copying the
// page twice on this project's machines), and it still reads as zeroes.
func TestVMAllocatePopulated(t *testing.T) {
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
			for i := 0; i < len(mem); i += page {
				require.Zero(t, mem[i], "vm_allocate memory is zero-filled")
			}
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
