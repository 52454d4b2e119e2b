//go:build linux

package emu

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func sampleDatagram() *datagram {
	return &datagram{
		bits: 0x80001112, id: -7, bodyFD: -1, body: []byte("hello"), bodyLen: 5, nfds: 4,
		reply: record{kind: kindPort, typ: typePortSendOnce, fd: 0, counterFD: -1, id: portID{1, 2, 3}},
		descs: []record{
			{kind: kindPort, typ: typePortSend, fd: 1, counterFD: 2, id: portID{9}},
			{kind: kindMemory, typ: 1, fd: 3, counterFD: -1, parts: 1, size: 4001},
			{kind: kindReceive, typ: typePortReceive, fd: -1, counterFD: -1, token: 42},
		},
	}
}

func TestDatagramRoundTrip(t *testing.T) {
	d := sampleDatagram()
	b := d.encode(nil)
	var got datagram
	require.NoError(t, got.decode(b, 4))
	require.Equal(t, d.bits, got.bits)
	require.Equal(t, d.id, got.id)
	require.Equal(t, "hello", string(got.body))
	require.Equal(t, d.reply, got.reply)
	require.Equal(t, d.descs, got.descs)

	require.ErrorIs(t, got.decode(b, 3), errMalformed, "fewer fds than it says")
	require.ErrorIs(t, got.decode(b, 5), errMalformed, "more fds than it says")
	require.ErrorIs(t, got.decode(b[:len(b)-1], 4), errMalformed, "short body")
	dup := sampleDatagram()
	dup.descs[1].fd = 1 // the same fd twice
	require.ErrorIs(t, got.decode(dup.encode(nil), 4), errMalformed)
}

// A large region travels in parts at consecutive fd indices; every part must hold data and the
// indices must be in range and unused.
func TestDatagramMemoryParts(t *testing.T) {
	const mib = 1 << 20
	mem := func(fd int16, parts uint8, size uint32) *datagram {
		return &datagram{bodyFD: -1, nfds: 5, reply: record{fd: -1, counterFD: -1},
			descs: []record{{kind: kindMemory, fd: fd, counterFD: -1, parts: parts, size: size}}}
	}
	for _, tc := range []struct {
		name string
		d    *datagram
		nfds int
		ok   bool
	}{
		{"one part", mem(0, 1, 64*mib), 1, true},
		{"four parts", mem(0, 4, 64*mib), 4, true},
		{"eight parts", mem(0, 8, 64*mib), 8, true},
		{"more parts than fds", mem(2, 4, 64*mib), 5, false},
		{"too many parts", mem(0, maxMemParts+1, 64*mib), maxMemParts + 1, false},
		{"an empty last part", mem(0, 4, uint32(3*pageSize)), 4, false},
		{"parts of nothing", mem(0, 2, 0), 2, false},
		{"an fd for no memory", mem(0, 1, 0), 1, false},
		{"nearly 4 GiB in one part", mem(0, 1, 0xfffff001), 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.d.nfds = tc.nfds
			b := tc.d.encode(nil)
			var got datagram
			err := got.decode(b, tc.nfds)
			if !tc.ok {
				require.ErrorIs(t, err, errMalformed)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.d.descs, got.descs)
		})
	}
	// The parts count is a byte; 0xff must not wrap to zero parts.
	wrap := mem(0, 1, 64*mib)
	wrap.nfds = 1
	b := wrap.encode(nil)
	b[wireFixedSize+3] = 0xff
	var got datagram
	require.ErrorIs(t, got.decode(b, 1), errMalformed)

	off, n := memPart(0xfffff001, 1, 0)
	require.Equal(t, [2]uint32{0, 0xfffff001}, [2]uint32{off, n})
	var total uint32
	for i := range 3 {
		off, n := memPart(64*mib+5, 3, i)
		require.Equal(t, total, off)
		require.Zero(t, uint64(off)%pageSize)
		total += n
	}
	require.Equal(t, uint32(64*mib+5), total)
}

func FuzzDatagramDecode(f *testing.F) {
	f.Add(sampleDatagram().encode(nil), 4)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, b []byte, nfds int) {
		if nfds < 0 || nfds > maxFDs {
			return
		}
		var d datagram
		if err := d.decode(b, nfds); err != nil {
			return
		}
		used := make([]int, nfds)
		mark := func(i int16) {
			if i >= 0 {
				used[i]++
			}
		}
		mark(d.reply.fd)
		mark(d.reply.counterFD)
		mark(d.bodyFD)
		for _, r := range d.descs {
			mark(r.fd)
			mark(r.counterFD)
			for i := int16(1); i < int16(r.parts); i++ {
				mark(r.fd + i)
			}
		}
		for i, n := range used {
			if n != 1 {
				t.Fatalf("fd %d used %d times", i, n)
			}
		}
	})
}
