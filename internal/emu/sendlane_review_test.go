//go:build linux

package emu

import (
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Adversarial review of send lanes (sendlane.go, commit 6ce5e1e). Each test states the Mach
// behaviour it holds the emulation to, from xnu's source.

// carryToFakeDest sends a send right to carried (MAKE_SEND) in a reply to a fake destination
// port dest of another process: the test plays that process and holds the reply channel's read
// end, which it returns (closed by the caller). With closeFirst the read end is closed before
// the send, as when the destination's process died: the send fails.
func carryToFakeDest(t *testing.T, server, carried uint32, dest portID, closeFirst bool) (int32, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), sendWithReplyFD(server, 7, nil, fds[1], dest))
	unix.Close(fds[1])
	req := receiveWithin(t, server)
	if closeFirst {
		unix.Close(fds[0])
		fds[0] = -1
	}
	kr := Send(&Msg{Bits: dispMoveSendOnce, Remote: req.Remote, ID: 8,
		Descs: []Desc{{Name: carried, Disp: dispMakeSend}}}, -1)
	return kr, fds[0]
}

// drainFD reads and closes what a fake destination got (a datagram and its fds).
func drainFD(t *testing.T, fd int) {
	t.Helper()
	_, got := readDatagram(t, fd)
	for _, f := range got {
		unix.Close(f)
	}
	unix.Close(fd)
}

// A send that fails at its destination (its process died: xnu's ipc_kmsg_copyin_header finds
// the destination dead and mach_msg returns MACH_SEND_INVALID_DEST, with every right it copied
// in released, ipc_kmsg_clean) leaves nothing behind in xnu: no resource of the carried port
// depends on the destination. Here the second carry of a send right to a destination makes a
// send lane (four fds: the data and control read ends, and the two write ends kept for the
// peer) before the send fails; the undo gives the write ends back to the lane, which this
// process then keeps for as long as the carried port lives, for a destination that is gone:
// four fds per destination that died between two carries (a server handing out its port to
// clients that come and go leaks without bound).
func TestSendLaneReviewFailedSendLeaksLaneFDs(t *testing.T) {
	carried, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(carried, 0, 0) })
	server := newTestPort(t, 0)
	const dests = 10
	// Warm-up: the port's epoll fd and counter exist before the count starts.
	kr, fd := carryToFakeDest(t, server, carried, newPortID(), false)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
	drainFD(t, fd)
	for range dests {
		dest := newPortID()
		kr, fd := carryToFakeDest(t, server, carried, dest, false) // notes dest
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
		drainFD(t, fd)
		kr, _ = carryToFakeDest(t, server, carried, dest, true) // dest gone: fails
		require.NotEqual(t, int32(abi.MACH_MSG_SUCCESS), kr)
	}
	// Counted on the lanes, not in /proc/self/fd: the first carries' channels retire when the
	// monitor sees them hang up, at a time of its own.
	sp.mu.Lock()
	kept, open := 0, 0
	for _, l := range sp.entries[carried].recv.sendLanes {
		if l.w >= 0 {
			kept++
		}
		for _, fd := range []int{l.ctl, l.w, l.cw} {
			if fd >= 0 {
				open++
			}
		}
		if l.rc != nil && !l.gone {
			open++
		}
	}
	sp.mu.Unlock()
	require.Zero(t, kept+open, "send lanes (%d with write ends kept, %d fds) for %d destinations that are gone",
		kept, open, dests)
}

// xnu keeps nothing per destination a send right was ever carried to (ipc_right_copyin and
// ipc_port_copy_send touch only the port's counts). Here every destination a send right to the
// port is carried to is noted in the port's sendLanes (sendToken's first case) and stays there
// for as long as the port lives, even once the destination is gone: a port handed out to many
// short-lived reply ports grows without bound.
func TestSendLaneReviewNotedDestinationsAreNeverForgotten(t *testing.T) {
	carried, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(carried, 0, 0) })
	server := newTestPort(t, 0)
	const dests = 50
	for range dests {
		kr, fd := carryToFakeDest(t, server, carried, newPortID(), false)
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
		drainFD(t, fd) // the destination's process is gone
	}
	sp.mu.Lock()
	n := len(sp.entries[carried].recv.sendLanes)
	sp.mu.Unlock()
	require.Less(t, n, dests/2, "destinations, all gone, still noted on the port")
}
