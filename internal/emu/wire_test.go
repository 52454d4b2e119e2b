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
			{kind: kindMemory, typ: 1, fd: 3, counterFD: -1, size: 4001},
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
		}
		for i, n := range used {
			if n != 1 {
				t.Fatalf("fd %d used %d times", i, n)
			}
		}
	})
}
