//go:build linux

package emu

import (
	"context"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// laneFromPeer plays the peer process a request goes to: it sends a request to a "remote"
// destination (a socket the test holds, claiming a port of another process) carrying a
// send-once right for reply, and returns what the peer got: the lane's write end, its key and
// the right's token.
func laneFromPeer(t *testing.T, reply uint32) (lfd int, key, tok uint64) {
	t.Helper()
	server := newTestPort(t, 0)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fds[0]) })
	return laneThrough(t, server, fds, reply)
}

// laneThrough is laneFromPeer with the server port (holding a send right) and the peer's socket
// pair given: it closes fds[1], and fds[0] stays the caller's to close.
func laneThrough(t *testing.T, server uint32, fds [2]int, reply uint32) (lfd int, key, tok uint64) {
	t.Helper()
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), sendWithReplyFD(server, 7, []byte("req"), fds[1], newPortID()))
	unix.Close(fds[1])
	req := receiveWithin(t, server)
	// The request to the peer, with the reply right made on a lane.
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS),
		Send(&Msg{Bits: dispMoveSendOnce | dispMakeSendOnce<<8, Remote: req.Remote, Local: reply, ID: 8}, -1))
	d, got := readDatagram(t, fds[0])
	require.Equal(t, uint8(kindLane), d.reply.kind, "the reply right travels as a lane token")
	require.Len(t, got, 1, "the first right on a lane brings its write end")
	return got[0], d.reply.laneKey, d.reply.token
}

// tryReceiveNow receives one message from name without waiting.
func tryReceiveNow(name uint32) (*Msg, int32) {
	var out Msg
	size := func(ports, mems, body int) int { return 0 }
	_, kr := Receive(context.Background(), name, 1<<20, size, false, 0, &out)
	return &out, kr
}

// laneReply writes a reply datagram on a lane naming tok.
func laneReply(t *testing.T, lfd int, tok uint64, id int32) {
	t.Helper()
	d := datagram{id: id, bodyFD: -1, reply: record{fd: -1, counterFD: -1}, body: []byte("reply"), bodyLen: 5, laneToken: tok}
	require.NoError(t, unix.Sendmsg(lfd, d.encode(nil), nil, nil, 0))
}

// A peer holding a lane can use only the tokens it was given, each once: a reply, drop or adopt
// naming any other token is ignored (a reply is dropped as malformed), and the right it was
// given still works.
func TestLaneForgedTokens(t *testing.T) {
	cases := []struct {
		name  string
		forge func(t *testing.T, lfd int, tok uint64)
		// use spends the right for real and checks what the port receives.
		use func(t *testing.T, lfd int, tok uint64, reply uint32)
	}{
		{
			name: "a reply with another token",
			forge: func(t *testing.T, lfd int, tok uint64) {
				laneReply(t, lfd, tok^1, 66)
				laneReply(t, lfd, 12345, 67)
			},
			use: func(t *testing.T, lfd int, tok uint64, reply uint32) {
				laneReply(t, lfd, tok, 9)
				m := receiveWithin(t, reply)
				require.Equal(t, int32(9), m.ID)
				require.Equal(t, uint32(typePortSendOnce), m.Bits>>8&0x1f)
				laneReply(t, lfd, tok, 10) // the same token again: used already
			},
		},
		{
			name: "a drop with another token",
			forge: func(t *testing.T, lfd int, tok uint64) {
				require.NoError(t, laneCtl(lfd, laneDrop, tok+1, -1))
			},
			use: func(t *testing.T, lfd int, tok uint64, reply uint32) {
				require.NoError(t, laneCtl(lfd, laneDrop, tok, -1))
				require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), receiveWithin(t, reply).ID)
				require.NoError(t, laneCtl(lfd, laneDrop, tok, -1)) // twice: nothing more
			},
		},
		{
			name:  "an adopt with another token, or of a pipe",
			forge: forgeAdopts,
			use: func(t *testing.T, lfd int, tok uint64, reply uint32) {
				fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				require.NoError(t, laneCtl(lfd, laneAdopt, tok, fds[0]))
				unix.Close(fds[0])
				d := datagram{id: 11, bodyFD: -1, reply: record{fd: -1, counterFD: -1}}
				require.NoError(t, unix.Sendmsg(fds[1], d.encode(nil), nil, nil, 0))
				unix.Close(fds[1])
				require.Equal(t, int32(11), receiveWithin(t, reply).ID, "the adopted channel carries the right")
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reply := newTestPort(t, 0)
			lfd, _, tok := laneFromPeer(t, reply)
			defer unix.Close(lfd)
			c.forge(t, lfd, tok)
			for {
				_, kr := tryReceiveNow(reply)
				if kr == abi.MACH_RCV_TIMED_OUT {
					break
				}
				require.Equal(t, RcvMalformed, kr, "a forged datagram is dropped, not delivered")
			}
			status := make([]int32, abi.MACH_PORT_RECEIVE_STATUS_COUNT)
			_, kr := GetAttributes(reply, abi.MACH_PORT_RECEIVE_STATUS, status)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, int32(1), status[5], "the right given is still outstanding")
			c.use(t, lfd, tok, reply)
			for {
				_, kr := tryReceiveNow(reply)
				if kr == abi.MACH_RCV_TIMED_OUT {
					break
				}
				require.Equal(t, RcvMalformed, kr, "a used token names nothing")
			}
			_, kr = GetAttributes(reply, abi.MACH_PORT_RECEIVE_STATUS, status)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, int32(0), status[5], "no right is left")
		})
	}
}

// forgeAdopts sends an adopt naming a token the lane never issued, and one of a pipe: neither
// is adopted (the channels offered are closed).
func forgeAdopts(t *testing.T, lfd int, tok uint64) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[1])
	require.NoError(t, laneCtl(lfd, laneAdopt, tok-1, fds[0]))
	unix.Close(fds[0])
	var p [2]int
	require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	defer unix.Close(p[1])
	require.NoError(t, laneCtl(lfd, laneAdopt, tok, p[0]))
	unix.Close(p[0])
}

// When every holder of a lane is gone (the peer process exited), each right still outstanding
// on it is destroyed: the port receives MACH_NOTIFY_SEND_ONCE for each, as xnu's task teardown
// destroys a dead task's send-once rights.
func TestLaneHolderGone(t *testing.T) {
	reply := newTestPort(t, 0)
	lfd, _, _ := laneFromPeer(t, reply)
	// The peer says hello (as copyout does), so the port closes its own copy of the write end.
	require.NoError(t, laneCtl(lfd, laneHello, 0, -1))
	_, kr := tryReceiveNow(reply)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
	unix.Close(lfd)
	require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), receiveWithin(t, reply).ID)
	_, kr = tryReceiveNow(reply)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "one notification per right")
}

// readDatagram reads one datagram from the socket fd, as a port's receiver would, and decodes
// it with the fds it carried.
func readDatagram(t *testing.T, fd int) (datagram, []int) {
	t.Helper()
	buf := make([]byte, maxDatagram)
	oob := make([]byte, oobSize)
	n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
	require.NoError(t, err)
	var got []int
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	require.NoError(t, err)
	for _, cm := range msgs {
		if r, err := unix.ParseUnixRights(&cm); err == nil {
			got = append(got, r...)
		}
	}
	var d datagram
	require.NoError(t, d.decode(buf[:n], len(got)))
	return d, got
}
