//go:build linux

package emu

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// newTestPort makes a receive right with a queue limit (0: the default) and a send right under
// the same name, both destroyed at cleanup.
func newTestPort(t *testing.T, qlimit uint32) uint32 {
	t.Helper()
	flags := uint32(0)
	if qlimit > 0 {
		flags = abi.MPO_QLIMIT
	}
	name, kr := Construct(flags, qlimit, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(name, name, dispMakeSend))
	t.Cleanup(func() { Destruct(name, -1, 0) })
	return name
}

// receiveWithin receives one message from name, waiting at most 10 s.
func receiveWithin(t *testing.T, name uint32) *Msg {
	t.Helper()
	var out Msg
	size := func(ports, mems, body int) int { return 0 }
	_, kr := Receive(context.Background(), name, 1<<20, size, false, 10*time.Second, &out)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
	return &out
}

// sendWithin sends m with no time limit, as a server sends a reply, and fails the test if the
// send has not returned within 10 s: a send on a send-once right never waits for its receiver.
// (A send that is stuck returns when the test's cleanup destroys what it waits on.)
func sendWithin(t *testing.T, m *Msg) int32 {
	t.Helper()
	done := make(chan int32, 1)
	go func() { done <- Send(m, -1) }()
	select {
	case kr := <-done:
		return kr
	case <-time.After(10 * time.Second):
		t.Fatal("a send on a send-once right still waits after 10 s")
		return 0
	}
}

// fullSocket returns a socketpair whose write end's buffer is full, a peer's reply "right" that
// can take nothing more, how many datagrams fill it, and a function that closes both ends (also
// called at cleanup, so that a send stuck on the socket returns).
func fullSocket(t *testing.T) (r, w, queued int, closeBoth func()) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	var once sync.Once
	closeBoth = func() { once.Do(func() { unix.Close(fds[0]); unix.Close(fds[1]) }) }
	t.Cleanup(closeBoth)
	filler := make([]byte, 4096)
	for {
		err := unix.Sendmsg(fds[1], filler, nil, nil, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return fds[0], fds[1], queued, closeBoth
		}
		require.NoError(t, err)
		queued++
	}
}

// A message on a send-once right never waits for its receiver (xnu's ipc_mqueue_send queues it
// whatever the queue limit). Where the emulation cannot queue it at once, because the channel
// behind the right is full (only a peer that forged the right and filled its socket can make it
// so), the send succeeds and the message is destroyed, as xnu's ipc_kmsg_send does with a
// message whose port died: the rights and memory it carried are released.
func TestSendOnceNeverWaits(t *testing.T) {
	// Each case's reply carries rights or memory; check proves the dropped message released them.
	cases := []struct {
		name string
		// claims is the port the forged reply right claims to lead to (zero: an unknown one).
		claims func(other uint32) portID
		descs  func(t *testing.T, other uint32) []Desc
		check  func(t *testing.T, other uint32, descs []Desc)
	}{
		{
			name:   "a send-once right and memory",
			claims: func(uint32) portID { return newPortID() },
			descs: func(t *testing.T, other uint32) []Desc {
				region, kr := VMAllocate(1 << 16)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				return []Desc{{Name: other, Disp: dispMakeSendOnce},
					{Memory: true, Addr: region, Size: 1 << 16, Dealloc: true, Copy: abi.MACH_MSG_VIRTUAL_COPY}}
			},
			check: func(t *testing.T, other uint32, descs []Desc) {
				require.False(t, isRegion(descs[1].Addr, 1<<16), "the deallocated memory went with the message")
				n := receiveWithin(t, other)
				require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), n.ID, "the carried send-once right was destroyed")
			},
		},
		{
			// A receive right moves only to a port of this process: the forged right claims one.
			name:   "a receive right",
			claims: func(other uint32) portID { return sp.entries[other].id },
			descs: func(t *testing.T, _ uint32) []Desc {
				moved, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				return []Desc{{Name: moved, Disp: dispMoveReceive}}
			},
			check: func(t *testing.T, _ uint32, descs []Desc) {
				_, kr := Type(descs[0].Name)
				require.Equal(t, int32(abi.KERN_INVALID_NAME), kr, "the receive right left with the message")
				sp.mu.Lock()
				defer sp.mu.Unlock()
				require.Empty(t, sp.tokens, "the port died with the message") // its fds are counted below
			},
		},
	}
	for _, c := range cases {
		t.Run("the channel is full/"+c.name, func(t *testing.T) {
			Destruct(newTestPort(t, 0), -1, 0) // starts the hang-up monitor, which stays
			fds := openFiles(t)
			server := newTestPort(t, 0)
			other := newTestPort(t, 0)
			r, w, queued, closeSocket := fullSocket(t)
			sp.mu.Lock()
			claims := c.claims(other)
			sp.mu.Unlock()
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), sendWithReplyFD(server, 7, []byte("request"), w, claims))
			req := receiveWithin(t, server)
			require.Equal(t, uint32(typePortSendOnce), req.Bits&abi.MACH_MSGH_BITS_REMOTE_MASK)

			descs := c.descs(t, other)
			drops := SendOnceDrops()
			reply := &Msg{Bits: dispMoveSendOnce, Remote: req.Remote, ID: 107, Body: []byte("reply"), Descs: descs}
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), sendWithin(t, reply))
			require.Equal(t, drops+1, SendOnceDrops(), "the reply was dropped")
			_, kr := Type(req.Remote)
			require.Equal(t, int32(abi.KERN_INVALID_NAME), kr, "the send-once right went with the message")
			c.check(t, other, descs)

			got := 0
			buf := make([]byte, 8192)
			for {
				if _, _, _, _, err := unix.Recvmsg(r, buf, nil, unix.MSG_DONTWAIT); err != nil {
					break
				}
				got++
			}
			require.Equal(t, queued, got, "nothing but the filler reached the full socket")
			closeSocket()
			Destruct(other, -1, 0)
			Destruct(server, -1, 0)
			// A deallocated region's memfd is kept for a while to be reused (regionpool.go).
			requireNoNewFDs(t, fds, "no fd is left open")
		})
	}

	// The queue limit counts messages on send rights only.
	t.Run("the queue is full", func(t *testing.T) {
		port := newTestPort(t, 1)
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1}, 0))
		require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 2}, 0),
			"the queue is full for a send right")
		once, _, kr := ExtractRight(port, dispMakeSendOnce)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), sendWithin(t, &Msg{Bits: dispMoveSendOnce, Remote: once, ID: 3}))
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), sendWithin(t, &Msg{Bits: dispMakeSendOnce, Remote: port, ID: 4}))
		ids := []int32{receiveWithin(t, port).ID, receiveWithin(t, port).ID, receiveWithin(t, port).ID}
		require.ElementsMatch(t, []int32{1, 3, 4}, ids)
	})
}
