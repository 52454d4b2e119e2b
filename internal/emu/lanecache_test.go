//go:build linux

package emu

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// sendLaneRight writes, on dest's channel, what a peer process writes for a request carrying a
// send-once right on its lane key: with the lane's write end fd (the first right on it), or,
// with fd -1, by key alone.
func sendLaneRight(t *testing.T, dest uint32, key, tok uint64, fd int) {
	t.Helper()
	ch, ok := ChannelFD(dest)
	require.True(t, ok)
	dg := datagram{id: 1, bodyFD: -1,
		reply: record{kind: kindLane, typ: typePortSendOnce, fd: -1, counterFD: -1, laneKey: key, token: tok}}
	var oob []byte
	if fd >= 0 {
		dg.nfds, dg.reply.fd = 1, 0
		oob = unix.UnixRights(fd)
	}
	require.NoError(t, unix.Sendmsg(ch, dg.encode(nil), oob, nil, unix.MSG_NOSIGNAL))
}

// answer receives the request on server and replies on its send-once right, which must be live.
func answer(t *testing.T, server uint32) {
	t.Helper()
	req := receiveWithin(t, server)
	require.NotEqual(t, uint32(abi.MACH_PORT_DEAD), req.Remote, "the reply right arrived dead")
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: req.Remote, ID: 2}, -1))
}

// laneRead reads what the port's side of a lane gets next without waiting: a control op
// (laneHello, laneBye), the token a reply uses, or eof; ok is false when nothing is there.
func laneRead(t *testing.T, r int) (op uint32, tok uint64, eof, ok bool) {
	t.Helper()
	buf := make([]byte, maxDatagram)
	n, _, _, _, err := unix.Recvmsg(r, buf, nil, unix.MSG_DONTWAIT)
	if err == unix.EAGAIN {
		return 0, 0, false, false
	}
	require.NoError(t, err)
	if n == 0 {
		return 0, 0, true, true
	}
	if n == laneCtlSize && binary.LittleEndian.Uint32(buf) == laneMagic {
		return binary.LittleEndian.Uint32(buf[4:]), 0, false, true
	}
	var d datagram
	require.NoError(t, d.decode(buf[:n], 0))
	return 0, d.laneToken, false, true
}

// A peer that sends rights on ever new lanes cannot make this process hold more than
// laneCacheMax of them (two fds each): the least recently used leave the cache, each told
// "bye" and then hung up. A lane in use meanwhile stays cached, and its requests, naming it by
// key alone, keep arriving with live reply rights whose replies come back on it.
func TestLaneCacheCapped(t *testing.T) {
	const capacity, flood = 8, 64
	sp.mu.Lock()
	old := laneCacheMax
	laneCacheMax = capacity
	sp.mu.Unlock()
	t.Cleanup(func() {
		sp.mu.Lock()
		laneCacheMax = old
		sp.mu.Unlock()
	})
	server := newTestPort(t, 0)

	lane := func() (r, w int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		return fds[0], fds[1]
	}
	// The well-behaved peer's lane, made before counting fds.
	goodR, goodW := lane()
	defer unix.Close(goodR)
	goodKey, goodTok := randomToken(), uint64(1)
	sendLaneRight(t, server, goodKey, goodTok, goodW)
	unix.Close(goodW)
	answer(t, server)
	expect := func(r int, wantOp uint32, wantTok uint64) {
		t.Helper()
		op, tok, eof, ok := laneRead(t, r)
		require.True(t, ok && !eof, "nothing on the lane")
		require.Equal(t, wantOp, op)
		require.Equal(t, wantTok, tok)
	}
	expect(goodR, laneHello, 0)
	expect(goodR, 0, goodTok)

	before := openFDs(t)
	hostile := make([]int, flood) // the read ends the hostile peer keeps
	for i := range hostile {
		r, w := lane()
		hostile[i] = r
		defer unix.Close(r)
		sendLaneRight(t, server, randomToken(), 1, w)
		unix.Close(w)
		answer(t, server)
		// Normal traffic between the flood's requests.
		goodTok++
		sendLaneRight(t, server, goodKey, goodTok, -1)
		answer(t, server)
		expect(goodR, 0, goodTok)
		require.LessOrEqual(t, openFDs(t)-before-(i+1), 2*capacity, "fds held for lanes, after %d lanes", i+1)
	}
	// The first lanes left the cache (all but the last capacity-1, beside the lane in use):
	// each heard hello, its reply, bye, and then the hang-up.
	for _, r := range hostile[:flood-capacity+1] {
		expect(r, laneHello, 0)
		expect(r, 0, 1)
		expect(r, laneBye, 0)
		_, _, eof, ok := laneRead(t, r)
		require.True(t, ok && eof, "an evicted lane hangs up")
	}
	// The last ones are cached still.
	for _, r := range hostile[flood-capacity+1:] {
		expect(r, laneHello, 0)
		expect(r, 0, 1)
		_, _, _, ok := laneRead(t, r)
		require.False(t, ok)
	}
	_, _, _, ok := laneRead(t, goodR)
	require.False(t, ok, "the lane in use was never dropped")
}

// requestTo plays a request to dest, a port of another process (a socket the test holds, under
// the port id dest), carrying a send-once right for reply, and returns how the right travelled:
// its lane's key and token, and the lane's write end if it came (else -1).
func requestTo(t *testing.T, server, reply uint32, dest portID) (key, tok uint64, lfd int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[0])
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), sendWithReplyFD(server, 7, []byte("req"), fds[1], dest))
	unix.Close(fds[1])
	req := receiveWithin(t, server)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS),
		Send(&Msg{Bits: dispMoveSendOnce | dispMakeSendOnce<<8, Remote: req.Remote, Local: reply, ID: 8}, -1))
	d, got := readDatagram(t, fds[0])
	require.Equal(t, uint8(kindLane), d.reply.kind)
	lfd = -1
	if len(got) == 1 {
		lfd = got[0]
	}
	return d.reply.laneKey, d.reply.token, lfd
}

// When the peer drops a lane from its cache (bye), the port issues no more tokens on it: the
// next right for that destination goes on a new lane. The right outstanding on the old lane
// still works, and one the peer can no longer use (sent by key after the peer dropped the lane)
// becomes MACH_NOTIFY_SEND_ONCE when the lane hangs up.
func TestLaneBye(t *testing.T) {
	server, reply, dest := newTestPort(t, 0), newTestPort(t, 0), newPortID()
	key1, tok1, lfd := requestTo(t, server, reply, dest)
	require.GreaterOrEqual(t, lfd, 0, "the first right on a lane brings its write end")
	require.NoError(t, laneCtl(lfd, laneHello, 0, -1))
	_, kr := tryReceiveNow(reply)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
	key, _, fd := requestTo(t, server, reply, dest)
	require.Equal(t, key1, key, "after hello, the lane is named by key")
	require.Equal(t, -1, fd)

	require.NoError(t, laneCtl(lfd, laneBye, 0, -1))
	_, kr = tryReceiveNow(reply)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
	key, _, fd = requestTo(t, server, reply, dest)
	require.NotEqual(t, key1, key, "after bye, a new lane")
	require.GreaterOrEqual(t, fd, 0)
	unix.Close(fd) // that lane's holder is gone: its right becomes a notification

	laneReply(t, lfd, tok1, 9)
	ids := map[int32]int{}
	for range 2 {
		ids[receiveWithin(t, reply).ID]++
	}
	require.Equal(t, map[int32]int{9: 1, abi.MACH_NOTIFY_SEND_ONCE: 1}, ids)
	unix.Close(lfd) // the lane hangs up with the second right outstanding
	require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), receiveWithin(t, reply).ID)
	_, kr = tryReceiveNow(reply)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "one notification per right")
}

// A reply right on a lane this process already keeps is named without looking at the lane (no
// system call): once the lane's port side is gone, the lane's monitor takes it out of the cache,
// and a right sent on it by key from then on arrives as MACH_PORT_DEAD; a right named before
// that fails to send as a dead one does (mach's Linux differences).
func TestHungUpLaneRightsArriveDead(t *testing.T) {
	server := newTestPort(t, 0)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	key := randomToken()
	sendLaneRight(t, server, key, 1, fds[1]) // the first right brings the lane's write end
	unix.Close(fds[1])
	answer(t, server)
	sendLaneRight(t, server, key, 2, -1) // by key: the lane is cached
	early := receiveWithin(t, server)
	require.NotEqual(t, uint32(abi.MACH_PORT_DEAD), early.Remote)

	unix.Close(fds[0]) // the reply port's side goes
	cached := func() bool {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		return sp.lanes[key] != nil
	}
	for deadline := time.Now().Add(10 * time.Second); cached(); {
		require.True(t, time.Now().Before(deadline), "the hung-up lane stayed in the cache")
		time.Sleep(time.Millisecond)
	}
	sendLaneRight(t, server, key, 3, -1)
	require.Equal(t, uint32(abi.MACH_PORT_DEAD), receiveWithin(t, server).Remote)
	require.Equal(t, int32(abi.MACH_SEND_INVALID_DEST), Send(&Msg{Bits: dispMoveSendOnce, Remote: early.Remote, ID: 2}, -1))
}
