//go:build linux

package mach_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// emuHeader builds the emulation's datagram header (internal/emu/wire.go) so a test can play a
// peer that lies about it.
func emuHeader(flags uint16, bodyLen uint32, ndesc, nfds uint16, bodyFD int16) []byte {
	b := make([]byte, 64)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 0x4d50454d)
	le.PutUint16(b[4:], 1)
	le.PutUint16(b[6:], flags)
	le.PutUint32(b[16:], bodyLen)
	le.PutUint16(b[20:], ndesc)
	le.PutUint16(b[22:], nfds)
	le.PutUint16(b[24:], uint16(bodyFD))
	le.PutUint16(b[36:], 0xffff) // reply record: no fds
	le.PutUint16(b[38:], 0xffff)
	return b
}

// emuMemoryRecord appends to b an out-of-line memory record of size bytes whose memfds (parts of
// them, one if not given) are the datagram's first fds.
func emuMemoryRecord(b []byte, size uint32, parts ...uint8) []byte {
	rec := make([]byte, 32)
	rec[0] = 2 // memory
	if len(parts) > 0 {
		rec[3] = parts[0] - 1
	}
	binary.LittleEndian.PutUint16(rec[4:], 0)
	binary.LittleEndian.PutUint16(rec[6:], 0xffff)
	binary.LittleEndian.PutUint32(rec[8:], size)
	return append(b, rec...)
}

// Out-of-line memory of up to 1 MiB in a memfd its sender could still change or shrink (not
// sealed against both) is copied in as it arrives, whatever seals a peer put on it: the receiver
// gets the bytes sent, and what the sender writes afterwards does not reach it.
func TestPeerMemoryCopiedIn(t *testing.T) {
	checkLeaks(t)
	r, s := newPort(t, mach.PortOptions{})
	fd, ok := emu.ChannelFD(uint32(s.Name()))
	require.True(t, ok)
	const size = 64 << 10
	cases := []struct {
		name  string
		seals int
	}{
		{"unsealed", -1},
		{"sealed against writes only", unix.F_SEAL_WRITE},
		{"sealed against shrinking only", unix.F_SEAL_SHRINK},
		{"sealed as a sender's pool", unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_FUTURE_WRITE},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			flags := unix.MFD_CLOEXEC
			if c.seals >= 0 {
				flags |= unix.MFD_ALLOW_SEALING
			}
			memfd, err := unix.MemfdCreate("peer", flags)
			require.NoError(t, err)
			defer unix.Close(memfd)
			want := make([]byte, size)
			for i := range want {
				want[i] = byte(i * 7)
			}
			_, err = unix.Pwrite(memfd, want, 0)
			require.NoError(t, err)
			if c.seals >= 0 {
				_, err = unix.FcntlInt(uintptr(memfd), unix.F_ADD_SEALS, c.seals)
				require.NoError(t, err)
			}
			dg := emuMemoryRecord(emuHeader(0, 0, 1, 1, -1), size)
			require.NoError(t, unix.Sendmsg(fd, dg, unix.UnixRights(memfd), nil, unix.MSG_DONTWAIT))

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var m mach.Message
			require.NoError(t, mach.Receive(ctx, r, &m))
			defer m.Destroy()
			require.Len(t, m.Descriptors, 1)
			got := m.Descriptors[0].(*mach.OOLDescriptor).Data
			require.Equal(t, want, got)
			if c.seals < 0 || c.seals&(unix.F_SEAL_WRITE|unix.F_SEAL_FUTURE_WRITE) == 0 {
				_, err = unix.Pwrite(memfd, make([]byte, size), 0)
				require.NoError(t, err)
				require.Equal(t, want, got, "what the sender wrote afterwards reached the receiver")
			}
		})
	}
}

// A peer holding a send right can write anything to the channel. The receiver drops each bad
// message with a typed error, closes any fds it carried, and keeps serving.
func TestHostilePeer(t *testing.T) {
	checkLeaks(t)
	r, s := newPort(t, mach.PortOptions{QueueLimit: 64})
	fd, ok := emu.ChannelFD(uint32(s.Name()))
	require.True(t, ok)
	pipeFDs := func() []int {
		var p [2]int
		require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
		return p[:]
	}
	unsealedOf := func(size int64) func() []int {
		return func() []int {
			m, err := unix.MemfdCreate("x", unix.MFD_CLOEXEC)
			require.NoError(t, err)
			require.NoError(t, unix.Ftruncate(m, size))
			return []int{m}
		}
	}
	unsealed := unsealedOf(1 << 20)
	sealed := func(sizes ...int64) func() []int {
		return func() []int {
			var fds []int
			for _, size := range sizes {
				m, err := unix.MemfdCreate("x", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
				require.NoError(t, err)
				require.NoError(t, unix.Ftruncate(m, size))
				_, err = unix.FcntlInt(uintptr(m), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
				require.NoError(t, err)
				fds = append(fds, m)
			}
			return fds
		}
	}
	oolRecord := emuMemoryRecord
	cases := []struct {
		name string
		data []byte
		fds  func() []int
	}{
		{"garbage", []byte("this is not a Mach message at all"), nil},
		{"truncated header", emuHeader(0, 0, 0, 0, -1)[:20], nil},
		{"empty datagram", nil, nil},
		{"body longer than sent", append(emuHeader(0, 100, 0, 0, -1), 1, 2, 3), nil},
		{"descriptor count beyond the data", emuHeader(0, 0, 5, 0, -1), nil},
		{"unexpected fds", emuHeader(0, 0, 0, 0, -1), pipeFDs},
		{"fd count lies", emuHeader(0, 0, 0, 3, -1), pipeFDs},
		{"body memfd not sealed", emuHeader(1, 1<<20, 0, 1, 0), unsealed},
		{"memory record beyond its memfd", oolRecord(emuHeader(0, 0, 1, 1, -1), 1<<30), sealed(4096)},
		{"a part of memory short", oolRecord(emuHeader(0, 0, 1, 2, -1), 16<<20, 2), sealed(8<<20, 4096)},
		{"memory parts beyond the fds", oolRecord(emuHeader(0, 0, 1, 2, -1), 24<<20, 3), sealed(8<<20, 8<<20)},
		{"a parts count that wraps to zero", oolRecord(emuHeader(0, 0, 1, 1, -1), 1<<20, 0), unsealed},
		{"nearly 4 GiB declared in a small memfd", oolRecord(emuHeader(0, 0, 1, 1, -1), 0xfffff001), sealed(4096)},
		// Memory of up to 1 MiB that its sender can still write is copied in at once, with no
		// seal or size checked first: a short read is what refuses it.
		{"memory to copy beyond its memfd", oolRecord(emuHeader(0, 0, 1, 1, -1), 64<<10), unsealedOf(4096)},
		{"memory to copy in a pipe", oolRecord(emuHeader(0, 0, 1, 1, -1), 64<<10), func() []int {
			p := pipeFDs()
			unix.Close(p[1])
			return p[:1]
		}},
		{"bad magic", append([]byte{1, 2, 3, 4}, emuHeader(0, 0, 0, 0, -1)[4:]...), nil},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var oob []byte
			var fds []int
			if c.fds != nil {
				fds = c.fds()
				oob = unix.UnixRights(fds...)
			}
			require.NoError(t, unix.Sendmsg(fd, c.data, oob, nil, unix.MSG_DONTWAIT))
			for _, f := range fds {
				unix.Close(f) // the in-flight copies are the receiver's to close
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var m mach.Message
			err := mach.Receive(ctx, r, &m)
			require.ErrorIs(t, err, mach.ErrInvalidMessage)

			send(t, ctx, s, int32(i), []byte("still serving"))
			require.NoError(t, mach.Receive(ctx, r, &m))
			require.Equal(t, int32(i), m.ID)
		})
	}
}
