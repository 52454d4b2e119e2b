//go:build linux

package emu

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Second adversarial review of send lanes (sendlane.go, branch tokens at e03aa6c). Each test
// states the Mach behaviour it holds the emulation to, from xnu's source.

// review2RoleEnv makes a re-executed test binary the second review's peer (its own variable, so
// that the roles of sendright_xproc_test.go and sendlane_review_test.go never see it).
const review2RoleEnv = "MACHPORT_EMU_SLREVIEW2_ROLE"

// The second review peer's commands, past the "sendlane" role's (slTake...slDestroyQ): it does
// slTake, slVia and slDrop as that role does.
const (
	r2Fill        = 200 + iota // send messages (8 KiB bodies, timeout 0) through the right taken until one fails; answer how many went, the failing kr and the send refs
	r2PassTimeout              // [disp]: send the right taken, with disp and timeout 0, to the port whose send right the command carries; answer the kr and the refs left
)

func init() {
	if os.Getenv(review2RoleEnv) == "" {
		return
	}
	if err := runXprocPeer(peerReview2); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// peerReview2 runs the test's commands until it exits, as peerSendLane does.
func peerReview2(parent, q, g uint32) error {
	return runSendLaneRole(parent, q, g, false, func(r *slRole, m *Msg, op uint32) error {
		switch op {
		case r2Fill:
			body := make([]byte, 8<<10)
			n := uint32(0)
			kr := int32(abi.MACH_MSG_SUCCESS)
			for ; n < 10_000; n++ {
				if kr = Send(&Msg{Bits: dispCopySend, Remote: r.name, ID: xVia, Body: body}, 0); kr != abi.MACH_MSG_SUCCESS {
					break
				}
			}
			refs, _ := GetRefs(r.name, abi.MACH_PORT_RIGHT_SEND)
			return r.answer(n, uint32(kr), refs)
		case r2PassTimeout:
			if len(m.Descs) != 1 {
				return r.fail("pass: %d descriptors", len(m.Descs))
			}
			name := r.name
			kr := r.pass(m, arg(m, 1), 0)
			refs, _ := GetRefs(name, abi.MACH_PORT_RIGHT_SEND)
			return r.answer(uint32(kr), refs)
		}
		return r.fail("command %d", op)
	})
}

// startReview2Peer runs the test binary again as a second review peer, as startXprocPeer does.
func startReview2Peer(t *testing.T, parent uint32) *rvPeer {
	t.Helper()
	p, _ := startReview2PeerCmd(t, parent)
	return p
}

// startReview2PeerCmd is startReview2Peer, with a channel closed once the peer has exited.
func startReview2PeerCmd(t *testing.T, parent uint32) (*rvPeer, <-chan struct{}) {
	t.Helper()
	cmd, exited, q, g := startRolePeer(t, review2RoleEnv+"=1", parent)
	return &rvPeer{slPeer: &slPeer{t: t, parent: parent, q: q, g: g}, pid: cmd.Process.Pid, gate: -1}, exited
}

// answerWithin receives a peer's answer on parent, waiting at most 10 s; ok is false when none
// came (the peer is stuck).
func answerWithin(t *testing.T, parent uint32) (vals []uint32, ok bool) {
	t.Helper()
	var m Msg
	size := func(ports, mems, body int) int { return 0 }
	if _, kr := Receive(context.Background(), parent, 1<<20, size, false, 10*time.Second, &m); kr != abi.MACH_MSG_SUCCESS {
		return nil, false
	}
	require.Equal(t, int32(xGot), m.ID, "the peer: %s", m.Body)
	vals = make([]uint32, len(m.Body)/4)
	for i := range vals {
		vals[i] = binary.LittleEndian.Uint32(m.Body[4*i:])
	}
	return vals, true
}

// A holder of a send right made of tokens moves it to a third process with a send timeout of 0,
// while the lane's data channel is full (the holder sent the port more than its process has
// received: a busy server). In xnu, copying a send right into a message never waits on the
// right's port (ipc_right_copyin, MOVE_SEND: the user reference moves into the kmsg, nothing is
// queued on the port), and the send waits only for room on its destination, and then never
// past its timeout (ipc_kmsg_send → ipc_mqueue_send with MACH_SEND_TIMEOUT: MACH_SEND_TIMED_OUT,
// and ipc_kmsg_copyout_pseudo hands the rights back). The third process's queue is empty: the
// send succeeds at once. mach/doc.go documents that the emulation waits for room on the lane
// "as a message to the port would"; a message to the port with timeout 0 returns
// MACH_SEND_TIMED_OUT at once, so either outcome is accepted here (with the right handed back
// on a time-out), but not waiting on: sendAdopts (msg.go) waits for room with waitWritable(fd,
// -1), whatever the send's timeout, and the holder's mach_msg never returns while the port's
// process does not receive.
func TestSendLaneReview2PassIgnoresSendTimeout(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, _ := armedPort(t)
	b := startReview2Peer(t, parent)
	c := startSendLanePeer(t, parent)
	releaseOwn := warmLane(t, b.slPeer, carried)
	b.give(carried, dispMakeSend)
	require.Equal(t, uint32(1), b.do(nil, slTake, 1)[1])
	releaseOwn()
	// The port's queue limit at its most, so that what fills first is the lane's data channel.
	require.Equal(t, int32(abi.KERN_SUCCESS), SetAttributes(carried, abi.MACH_PORT_LIMITS_INFO, []int32{abi.MACH_PORT_QLIMIT_MAX}))
	got := b.do(nil, r2Fill)
	require.Equal(t, uint32(abi.MACH_SEND_TIMED_OUT), got[1], "b's sends to the port time out once its lane is full (%d went)", got[0])
	require.Less(t, got[0], uint32(abi.MACH_PORT_QLIMIT_MAX), "the lane filled before the queue limit")
	// The timed-out send handed its copied destination right back (ipc_kmsg_copyout_pseudo).
	refs := got[2]

	b.command([]Desc{{Name: c.q, Disp: dispCopySend}}, r2PassTimeout, uint32(dispMoveSend))
	got, ok := answerWithin(t, parent)
	require.True(t, ok, "b's mach_msg with a timeout of 0 did not return within 10 s")
	switch got[0] {
	case abi.MACH_MSG_SUCCESS: // xnu's
		assert.Equal(t, refs-1, got[1], "one reference moved")
	case abi.MACH_SEND_TIMED_OUT: // the documented Linux difference
		assert.Equal(t, refs, got[1], "the right handed back")
	default:
		t.Fatalf("pass: %#x", got[0])
	}
}

// A send right made of tokens moves on to a third process, which sends a message through it;
// once that send returned MACH_MSG_SUCCESS, the message is on the port's queue in xnu
// (ipc_kmsg_send → ipc_mqueue_send → ipc_mqueue_post enqueues it before mach_msg returns), so
// a receive with a timeout of 0 takes it (ipc_mqueue_receive_on_thread finds the queue not
// empty; MACH_RCV_TIMED_OUT only when it is empty). Here the third process's channel reaches the
// port's process in an adopt datagram on the lane's data channel, which only a receive of the
// port reads: the receive reads the adopt (sendLaneAdoptOnData), and adoptSend installs the
// channel in a goroutine that needs sp.mu, which the receive holds: the receive finds no other
// channel and times out, though the message was sent.
func TestSendLaneReview2AdoptedRightsMessageNotReceivable(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, _ := armedPort(t)
	b := startReview2Peer(t, parent)
	c := startSendLanePeer(t, parent)
	releaseOwn := warmLane(t, b.slPeer, carried)
	b.give(carried, dispMakeSend)
	require.Equal(t, uint32(1), b.do(nil, slTake, 1)[1])
	releaseOwn()
	got := b.do([]Desc{{Name: c.q, Disp: dispCopySend}}, r2PassTimeout, uint32(dispMoveSend))
	require.Equal(t, uint32(abi.MACH_MSG_SUCCESS), got[0])
	require.Equal(t, uint32(1), c.do(nil, slTake, 1)[1], "c's right")
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, c.do(nil, slVia), "c sent through its right")
	m, kr := tryReceiveNow(carried)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr, "a receive (timeout 0) after c's send returned")
	require.Equal(t, int32(xVia), m.ID)
}

// The same move, for a port that its process never receives on: a port held for its no-senders
// notification alone (a session or an identity a server hands out, whose end it learns from
// no-senders). In xnu the third process's release is the last send right going
// (ipc_right_dealloc → ipc_port_release_send_and_unlock: ip_srights 0 → ipc_notify_no_senders),
// whether or not anyone ever receives on the port. Here the adopt that brings the third
// process's channel waits on the lane's data channel until a receive of the port reads it
// (recv.go's accept → sendLaneAdoptOnData); while it waits, the lane counts as a sender
// (settleSendLane: pending), so no-senders never comes.
func TestSendLaneReview2NoSendersWaitsForAReceive(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, notify := armedPort(t)
	b := startReview2Peer(t, parent)
	c := startSendLanePeer(t, parent)
	releaseOwn := warmLane(t, b.slPeer, carried)
	b.give(carried, dispMakeSend)
	require.Equal(t, uint32(1), b.do(nil, slTake, 1)[1])
	releaseOwn()
	got := b.do([]Desc{{Name: c.q, Disp: dispCopySend}}, r2PassTimeout, uint32(dispMoveSend))
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS, 0}, got, "b moved its one reference")
	require.Equal(t, uint32(1), c.do(nil, slTake, 1)[1], "c's right")
	require.Equal(t, []uint32{abi.KERN_SUCCESS}, c.do(nil, slDrop))
	// Nobody receives on carried.
	require.Equal(t, uint32(4), noSendersWithin(t, notify), "no-senders once c released the last right")
}

// Two holders, each with a send right made of tokens on a lane of its own, move them to the same
// third process at once: in xnu both user references join the third process's one name
// (ipc_right_copyout adds a user reference to the entry that names the port), each counts in
// ip_srights until released, and no-senders comes once the third process releases its name,
// with the make-send count of every right made (ipc_notify_no_senders, ip_mscount). Here each
// move makes a channel of its own and an adopt on its own lane; the third process keeps one of
// the two channels and closes the other.
func TestSendLaneReview2TwoHoldersAdoptToOneProcess(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, notify := armedPort(t)
	b1 := startReview2Peer(t, parent)
	b2 := startReview2Peer(t, parent)
	c := startSendLanePeer(t, parent)
	for _, b := range []*rvPeer{b1, b2} {
		releaseOwn := warmLane(t, b.slPeer, carried)
		b.give(carried, dispMakeSend)
		require.Equal(t, uint32(1), b.do(nil, slTake, 1)[1])
		releaseOwn()
	}
	b1.command([]Desc{{Name: c.q, Disp: dispCopySend}}, r2PassTimeout, uint32(dispMoveSend))
	b2.command([]Desc{{Name: c.q, Disp: dispCopySend}}, r2PassTimeout, uint32(dispMoveSend))
	for range 2 {
		got, ok := answerWithin(t, parent)
		require.True(t, ok)
		require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS, 0}, got)
	}
	require.Equal(t, uint32(2), c.do(nil, slTake, 2)[1], "one name, two references")
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, c.do(nil, slVia))
	require.Equal(t, int32(xVia), receiveWithin(t, carried).ID) // (reads the adopts: see TestSendLaneReview2NoSendersWaitsForAReceive)
	require.True(t, sendersOf(t, carried))
	_, kr := tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while c holds its right")
	require.Equal(t, []uint32{abi.KERN_SUCCESS}, c.do(nil, slDrop))
	require.Equal(t, uint32(8), noSendersWithin(t, notify), "every right made: 2×(the test's own, 2 to warm, 1)")
}

// wireHolder plays, on the wire, the process that holds a send lane into carried (a port of
// this process) for the destination dest: held is the channel of the first carry (an honest
// holder's right, released by the test), data and ctl the lane's write ends, after its hello.
type wireHolder struct {
	held      []int
	data, ctl int
	dest      portID
	carry     func() (datagram, []int)
}

// newWireHolder carries send rights to carried to a fake destination until they go as tokens
// alone, as TestSendRightTokenOnTheWire does: one channel (kept as held), the lane's first
// token with its write ends (one token outstanding), the hello.
func newWireHolder(t *testing.T, carried uint32) *wireHolder {
	t.Helper()
	server := newTestPort(t, 0)
	w := &wireHolder{dest: newPortID()}
	w.carry = func() (datagram, []int) {
		t.Helper()
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		defer unix.Close(fds[0])
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), sendWithReplyFD(server, 7, nil, fds[1], w.dest))
		unix.Close(fds[1])
		req := receiveWithin(t, server)
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: req.Remote, ID: 8,
			Descs: []Desc{{Name: carried, Disp: dispMakeSend}}}, -1))
		return readDatagram(t, fds[0])
	}
	d, got := w.carry()
	require.Equal(t, uint8(kindPort), d.descs[0].kind)
	w.held = got
	d, got = w.carry()
	require.Equal(t, uint8(kindSendLane), d.descs[0].kind)
	require.Len(t, got, 3)
	w.data, w.ctl = got[d.descs[0].fd], got[d.descs[0].fd+1]
	unix.Close(got[d.descs[0].counterFD])
	require.NoError(t, laneCtl(w.ctl, sendLaneHello, 0, -1))
	t.Cleanup(func() {
		for _, fd := range append([]int{w.data, w.ctl}, w.held...) {
			unix.Close(fd)
		}
	})
	return w
}

// outstanding is the lane's count of tokens issued and not given back, once every control
// datagram sent so far was read (GetAttributes reads them).
func (w *wireHolder) outstanding(t *testing.T, carried uint32) int {
	t.Helper()
	sendersOf(t, carried)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	l := sp.entries[carried].recv.sendLanes[w.dest]
	require.NotNil(t, l, "the lane")
	return l.outstanding
}

// openInodes lists this process's open fds that are one of the sockets or pipes inodes names.
func openInodes(t *testing.T, inodes []uint64) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	var open []string
	for _, e := range entries {
		link, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // closed meanwhile (the directory's own fd, say)
		}
		for _, ino := range inodes {
			if link == fmt.Sprintf("socket:[%d]", ino) || link == fmt.Sprintf("pipe:[%d]", ino) {
				open = append(open, e.Name()+" "+link)
			}
		}
	}
	return open
}

// A hostile holder of a send lane sends its port's process control datagrams that no honest
// holder sends: a "return" of more tokens than it was issued, a return on a lane with none
// outstanding, datagrams of the wrong size, magic or op, a return or hello carrying fds, an
// adopt on the control channel with a descriptor that is no channel, a datagram with several
// fds. In xnu a task can release only the send rights its space names (ipc_right_dealloc and
// ipc_right_delta act on the caller's entry alone), so another holder's right keeps the port's
// senders: no-senders comes only once the honest holder's right goes too
// (ipc_port_release_send_and_unlock: ip_srights 0). The port's process must close every fd such a
// datagram brought, never count fewer than 0 tokens, and keep serving: a right carried after it
// still counts.
func TestSendLaneReview2HostileHolderControl(t *testing.T) {
	datagram := func(size int, magic, op uint32, n uint64) []byte {
		b := make([]byte, size)
		le := binary.LittleEndian
		if size >= 8 {
			le.PutUint32(b[0:], magic)
			le.PutUint32(b[4:], op)
		}
		if size >= 16 {
			le.PutUint64(b[8:], n)
		}
		return b
	}
	pipeFD := func(t *testing.T) int {
		var p [2]int
		require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
		unix.Close(p[1])
		return p[0]
	}
	pairFD := func(t *testing.T) int {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		unix.Close(fds[1])
		return fds[0]
	}
	cases := []struct {
		name string
		b    []byte
		fds  func(t *testing.T) []int
		left int // the lane's tokens outstanding after (1 before)
	}{
		{"return more than issued", datagram(laneCtlSize, laneMagic, sendLaneReturn, 1<<63+5), nil, 0},
		{"return all, twice", datagram(laneCtlSize, laneMagic, sendLaneReturn, 1), nil, 0},
		{"short", datagram(laneCtlSize-1, laneMagic, sendLaneReturn, 1), nil, 1},
		{"long", datagram(laneCtlSize+1, laneMagic, sendLaneReturn, 1), nil, 1},
		{"empty", nil, nil, 1},
		{"bad magic", datagram(laneCtlSize, laneMagic+1, sendLaneReturn, 1), nil, 1},
		{"unknown op", datagram(laneCtlSize, laneMagic, 99, 1), nil, 1},
		{"return with an fd", datagram(laneCtlSize, laneMagic, sendLaneReturn, 1), func(t *testing.T) []int { return []int{pairFD(t)} }, 1},
		{"hello with an fd", datagram(laneCtlSize, laneMagic, sendLaneHello, 0), func(t *testing.T) []int { return []int{pairFD(t)} }, 1},
		{"adopt of a pipe", datagram(laneCtlSize, laneMagic, sendLaneAdopt, 0), func(t *testing.T) []int { return []int{pipeFD(t)} }, 1},
		{"adopt of two", datagram(laneCtlSize, laneMagic, sendLaneAdopt, 0), func(t *testing.T) []int { return []int{pairFD(t), pairFD(t)} }, 1},
		{"bad magic with fds", datagram(laneCtlSize, 0, sendLaneAdopt, 0), func(t *testing.T) []int { return []int{pairFD(t), pipeFD(t), pairFD(t)} }, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			carried, notify := armedPort(t)
			w := newWireHolder(t, carried)
			require.Equal(t, 1, w.outstanding(t, carried))
			var fds []int
			if tc.fds != nil {
				fds = tc.fds(t)
			}
			var inodes []uint64 // of what the datagram brings, to find any copy left open
			for _, fd := range fds {
				var st unix.Stat_t
				require.NoError(t, unix.Fstat(fd, &st))
				inodes = append(inodes, st.Ino)
			}
			var oob []byte
			if len(fds) > 0 {
				oob = unix.UnixRights(fds...)
			}
			times := 1
			if tc.name == "return all, twice" {
				times = 2
			}
			for range times {
				require.NoError(t, unix.Sendmsg(w.ctl, tc.b, oob, nil, unix.MSG_NOSIGNAL))
			}
			for _, fd := range fds {
				unix.Close(fd) // in flight, or the port's process's now
			}
			assert.Equal(t, tc.left, w.outstanding(t, carried), "tokens outstanding")
			assert.Empty(t, openInodes(t, inodes), "fds the datagram brought, left open")
			require.True(t, sendersOf(t, carried), "the honest holder's right")
			_, kr := tryReceiveNow(notify)
			require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while the honest holder's right exists")
			// Still served: a token carried after counts.
			d, got := w.carry()
			require.Equal(t, uint8(kindSendLane), d.descs[0].kind)
			require.Empty(t, got)
			require.Equal(t, tc.left+1, w.outstanding(t, carried))
			for _, fd := range w.held {
				unix.Close(fd)
			}
			w.held = nil
			_, kr = tryReceiveNow(notify)
			require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while a token is outstanding")
			require.NoError(t, laneCtl(w.ctl, sendLaneReturn, uint64(tc.left+1), -1))
			require.Equal(t, uint32(3), noSendersWithin(t, notify), "three rights made")
		})
	}
}

// A send right carried as a message's reply right (the header's local port) rather than in a
// descriptor: xnu's ipc_kmsg_copyin_header copies the reply right in with ipc_right_copyin as it
// does a descriptor's (MAKE_SEND: ipc_port_make_send_locked; COPY_SEND: ipc_port_copy_send; MOVE_SEND:
// the name's reference), each an ip_srights count, and ipc_kmsg_copyout_header names it in the
// receiver. The reply right rides the same send lane as descriptors (a channel, then the lane's
// write ends, then tokens alone), counts as a sender until given back, and no-senders comes once
// every right is gone, with every right made.
func TestSendLaneReview2ReplyRightAsToken(t *testing.T) {
	for _, disp := range []uint8{dispMakeSend, dispCopySend, dispMoveSend} {
		t.Run(fmt.Sprint(disp), func(t *testing.T) {
			carried, notify := armedPort(t)
			if disp != dispMakeSend {
				require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(carried, carried, dispMakeSend))
				require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(carried, abi.MACH_PORT_RIGHT_SEND, 3))
			}
			server := newTestPort(t, 0)
			dest := newPortID()
			carry := func() (datagram, []int) {
				t.Helper()
				fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
				require.NoError(t, err)
				defer unix.Close(fds[0])
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), sendWithReplyFD(server, 7, nil, fds[1], dest))
				unix.Close(fds[1])
				req := receiveWithin(t, server)
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce | uint32(disp)<<8,
					Remote: req.Remote, Local: carried, ID: 8}, -1))
				return readDatagram(t, fds[0])
			}
			d, held := carry()
			require.Equal(t, uint8(kindPort), d.reply.kind, "the first carry: a channel")
			d, got := carry()
			require.Equal(t, uint8(kindSendLane), d.reply.kind, "the second: the lane's write ends")
			require.Len(t, got, 3)
			data, ctl := got[d.reply.fd], got[d.reply.fd+1]
			unix.Close(got[d.reply.counterFD])
			defer unix.Close(data)
			defer unix.Close(ctl)
			require.NoError(t, laneCtl(ctl, sendLaneHello, 0, -1))
			d, got = carry()
			require.Equal(t, uint8(kindSendLane), d.reply.kind, "after the hello: a token")
			require.Empty(t, got)
			if disp != dispMakeSend {
				// The test's own: 4 references, 3 copied or moved.
				refs, _ := GetRefs(carried, abi.MACH_PORT_RIGHT_SEND)
				want := uint32(4)
				if disp == dispMoveSend {
					want = 1
				}
				require.Equal(t, want, refs)
				require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(carried, abi.MACH_PORT_RIGHT_SEND, -int32(refs)))
			}
			for _, fd := range held {
				unix.Close(fd)
			}
			require.True(t, sendersOf(t, carried), "2 tokens outstanding")
			_, kr := tryReceiveNow(notify)
			require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
			require.NoError(t, laneCtl(ctl, sendLaneReturn, 2, -1))
			want := uint32(3)
			if disp != dispMakeSend {
				want = 1 // the test's InsertRight
			}
			require.Equal(t, want, noSendersWithin(t, notify))
		})
	}
}

// Holders come and go (each keeps a send lane into the port, holds tokens, and exits holding
// them): in xnu each holder's end releases its rights (ipc_space_terminate) and nothing of it
// stays with the port but its make-send count. Here each exit hangs up its lane's control
// channel (sendLaneGone: the tokens come back, no-senders fires) and its data channel (retired):
// once every holder is gone, this process holds no more fds, goroutines or lanes with fds for
// them than after the first.
func TestSendLaneReview2LanesComeAndGo(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, notify := armedPort(t)
	mscount := uint32(0)
	cycle := func() {
		t.Helper()
		b, exited := startReview2PeerCmd(t, parent)
		releaseOwn := warmLane(t, b.slPeer, carried)
		for range 3 {
			b.give(carried, dispMakeSend)
		}
		require.Equal(t, uint32(3), b.do(nil, slTake, 3)[1])
		releaseOwn()
		b.command(nil, slExit)
		<-exited                             // waited for: its pidfd (os/exec's) closes
		mscount = noSendersWithin(t, notify) // b's exit gave its tokens back
		_, kr := RequestNotification(carried, abi.MACH_NOTIFY_NO_SENDERS, mscount+1, notify, dispMakeSendOnce)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		Deallocate(b.q)
		Deallocate(b.g)
	}
	lanes := func() (open int) {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		for _, l := range sp.entries[carried].recv.sendLanes {
			if l.ctl >= 0 || l.w >= 0 || l.cw >= 0 || (l.rc != nil && sp.entries[carried].recv.chans[l.rc.fd] == l.rc) {
				open++
			}
		}
		return open
	}
	cycle()
	// A port makes its epoll and eventfd the first time a receive on it waits, which the first
	// cycle's may or may not have done: a wait that times out makes them before the snapshot.
	for _, name := range []uint32{notify, parent} {
		_, kr := Receive(context.Background(), name, 1<<20, func(int, int, int) int { return 0 }, false, time.Millisecond, new(Msg))
		require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
	}
	fds, goroutines := openFiles(t), runtime.NumGoroutine()
	for range 6 {
		cycle()
	}
	assert.Zero(t, lanes(), "lanes with fds, their holders gone")

	assert.Empty(t, newSince(t, fds), "fds after 6 more holders came and went")
	assert.LessOrEqual(t, runtime.NumGoroutine(), goroutines+2, "goroutines")
}

// The holder's side of user references on a name whose send right is made of tokens. xnu pegs
// a name's send user references at MACH_PORT_UREFS_MAX: ipc_right_copyout of a send right to a
// pegged entry consumes the right ("leave urefs pegged to maximum, consume send right"),
// ipc_right_delta leaves a pegged count alone unless the delta is -MACH_PORT_UREFS_MAX, which
// releases the name, and with it the port's last send right here (ipc_port_release_send: the
// tokens all given back); a delta below the count is KERN_INVALID_VALUE and releases nothing.
// A port that dies turns the name into a dead name with its user references, and a dead-name
// request fires with one more (ipc_right_check, ipc_notify_dead_name).
func TestSendLaneReview2HolderRefs(t *testing.T) {
	t.Run("pegged", func(t *testing.T) {
		port := newTestPort(t, 0)
		l := newFakeSendLane(t)
		l.send(t, port)
		name := receiveWithin(t, port).Descs[0].Name
		op, _ := l.readCtl(t)
		require.Equal(t, uint32(sendLaneHello), op)
		require.Equal(t, int32(abi.KERN_INVALID_VALUE), ModRefs(name, abi.MACH_PORT_RIGHT_SEND, -2))
		require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(name, abi.MACH_PORT_RIGHT_SEND, urefsMax-1))
		for range 2 {
			l.send(t, port)
			require.Equal(t, name, receiveWithin(t, port).Descs[0].Name)
		}
		refs, _ := GetRefs(name, abi.MACH_PORT_RIGHT_SEND)
		require.Equal(t, uint32(urefsMax), refs, "pegged")
		require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(name, abi.MACH_PORT_RIGHT_SEND, -1))
		refs, _ = GetRefs(name, abi.MACH_PORT_RIGHT_SEND)
		require.Equal(t, uint32(urefsMax), refs, "still pegged")
		require.False(t, waitReadableNow(l.ctl), "nothing given back while the name holds the right")
		require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(name, abi.MACH_PORT_RIGHT_SEND, -urefsMax))
		op, n := l.readCtl(t)
		require.Equal(t, []uint64{sendLaneReturn, 3}, []uint64{uint64(op), n}, "every token given back")
		_, kr := GetRefs(name, abi.MACH_PORT_RIGHT_SEND)
		require.Equal(t, int32(abi.KERN_INVALID_NAME), kr)
	})
	t.Run("dead name", func(t *testing.T) {
		port := newTestPort(t, 0)
		notify := newTestPort(t, 0)
		l := newFakeSendLane(t)
		l.send(t, port)
		name := receiveWithin(t, port).Descs[0].Name
		op, _ := l.readCtl(t)
		require.Equal(t, uint32(sendLaneHello), op)
		l.send(t, port)
		require.Equal(t, name, receiveWithin(t, port).Descs[0].Name)
		_, kr := RequestNotification(name, abi.MACH_NOTIFY_DEAD_NAME, 0, notify, dispMakeSendOnce)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		// The port's process dies: its read ends close.
		unix.Close(l.data)
		unix.Close(l.ctl)
		l.data, l.ctl = -1, -1
		m := receiveWithin(t, notify)
		require.Equal(t, int32(abi.MACH_NOTIFY_DEAD_NAME), m.ID)
		require.Equal(t, name, binary.LittleEndian.Uint32(m.Body[8:]))
		refs, kr := GetRefs(name, abi.MACH_PORT_RIGHT_DEAD_NAME)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		require.Equal(t, uint32(3), refs, "the name's two and the notification's one")
		require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(name, abi.MACH_PORT_RIGHT_DEAD_NAME, -3))
		// (The monitor forgets it once it sees the lane's channels hang up, maybe after the
		// notification: wait for it.)
		waitFor(t, "the lane of a dead port, its names gone, forgotten", func() bool { return sp.sendLanes[l.key] == nil })
	})
}

// A holder says hello on its new lane and exits at once; the port's process has read neither
// (its monitor's watch is held off here, as when it waits for sp.mu) when it next carries a send
// right to that holder's port, whose process is gone: the send fails (MACH_SEND_INVALID_DEST).
// In xnu a send that fails at its destination leaves the port's send rights as they were
// (ipc_kmsg_copyin_header finds the destination dead before any right is copied in, or
// ipc_kmsg_clean releases what was: ipc_port_release_send), so once the last real right goes,
// no-senders comes (ipc_notify_no_senders). Here sendToken reads the control channel itself
// (readSendCtl): the hello, then the hang-up, which retires the lane (sendLaneGone →
// hungUpNow); back in sendToken the hello is seen and a token is issued on the retired lane
// (rc.counted again, p.senders + 1); the failed send's rollback gives the token back, but
// settleSendLane finds the channel no longer the port's and never takes the sender off: the
// port counts a sender for good, and no-senders never comes.
func TestSendLaneReview2TokenIssuedOnALaneGoneInSendToken(t *testing.T) {
	carried, notify := armedPort(t)
	server := newTestPort(t, 0)
	dest := newPortID()
	kr, fd := carryToFakeDest(t, server, carried, dest, false) // a channel
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
	d, held := readDatagram(t, fd)
	unix.Close(fd)
	require.Equal(t, uint8(kindPort), d.descs[0].kind)
	kr, fd = carryToFakeDest(t, server, carried, dest, false) // the lane's write ends
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
	d, got := readDatagram(t, fd)
	unix.Close(fd)
	require.Equal(t, uint8(kindSendLane), d.descs[0].kind)
	require.Len(t, got, 3)
	sp.mu.Lock()
	unwatchCtl(sp.entries[carried].recv.sendLanes[dest])
	sp.mu.Unlock()
	require.NoError(t, laneCtl(got[d.descs[0].fd+1], sendLaneHello, 0, -1))
	for _, fd := range got { // the holder exits: its lane's write ends close
		unix.Close(fd)
	}
	kr, _ = carryToFakeDest(t, server, carried, dest, true) // its port is gone with it
	require.NotEqual(t, int32(abi.MACH_MSG_SUCCESS), kr)
	for _, fd := range held { // the first right, the last one, goes
		unix.Close(fd)
	}
	require.Equal(t, uint32(2), noSendersWithin(t, notify), "no-senders once every right is gone, with the two rights made")
}

// One message with several send rights to the port as tokens, among MACH_PORT_NULL and
// MACH_PORT_DEAD descriptors (the Linux emulation refuses out-of-line port arrays, mach/doc.go:
// this is the inline form of the same array). xnu copies each descriptor in on its own
// (ipc_kmsg_copyin_port_descriptor: a null or dead name travels as itself, IO_VALID false, and
// counts nothing), and ipc_right_copyout joins every send right to the port under one name with
// a user reference each; ip_srights counts each until released.
func TestSendLaneReview2TokensAmongNullAndDead(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, notify := armedPort(t)
	b := startReviewPeer(t, parent)
	releaseOwn := warmLane(t, b.slPeer, carried)
	descs := []Desc{
		{Name: carried, Disp: dispMakeSend},
		{Name: abi.MACH_PORT_NULL, Disp: dispCopySend},
		{Name: carried, Disp: dispMakeSend},
		{Name: abi.MACH_PORT_DEAD, Disp: dispCopySend},
		{Name: carried, Disp: dispMakeSend},
	}
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend | abi.MACH_MSGH_BITS_COMPLEX,
		Remote: b.q, ID: xGive, Descs: descs}, -1))
	got := b.do(nil, rvTakeAll)
	require.Len(t, got, 6)
	n := got[0]
	require.Equal(t, []uint32{n, abi.MACH_PORT_NULL, n, abi.MACH_PORT_DEAD, n, 3}, got)
	waitFor(t, "three tokens", func() bool { return sendLaneTo(carried, b.q).outstanding == 3 })
	releaseOwn()
	require.True(t, sendersOf(t, carried))
	_, kr := tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
	require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop))
	require.Equal(t, uint32(6), noSendersWithin(t, notify))
}

// A send right made of tokens moves to a third process, and the port dies before that process
// receives the message (the adopt still queued on the lane): in xnu the right in the message is
// a right to a dead port, and ipc_kmsg_copyout_object names it MACH_PORT_DEAD (copyout of a
// right whose port is inactive); the port's death released every right (ipc_port_destroy).
func TestSendLaneReview2AdoptRacingPortDeath(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, _ := armedPort(t)
	b := startReview2Peer(t, parent)
	c := startSendLanePeer(t, parent)
	releaseOwn := warmLane(t, b.slPeer, carried)
	b.give(carried, dispMakeSend)
	require.Equal(t, uint32(1), b.do(nil, slTake, 1)[1])
	releaseOwn()
	got := b.do([]Desc{{Name: c.q, Disp: dispCopySend}}, r2PassTimeout, uint32(dispMoveSend))
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS, 0}, got)
	require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(carried, 0, 0))
	got = c.do(nil, slTake, 1)
	require.Equal(t, uint32(abi.MACH_PORT_DEAD), got[0], "c's right, its port dead before c received it")
}

// A holder copies or moves a send right made of tokens to a third process whose queue is full,
// with a timeout of 0: xnu's send times out (ipc_mqueue_send: MACH_SEND_TIMED_OUT) and
// ipc_kmsg_copyout_pseudo hands every right of the message back to the sender (a copied right is
// one more user reference, a moved one comes back), so the port keeps its senders, and once
// the holder releases all its references, no-senders comes with every right made.
func TestSendLaneReview2PassTimesOutAtAFullThirdProcess(t *testing.T) {
	for _, disp := range []uint8{dispCopySend, dispMoveSend} {
		t.Run(fmt.Sprint(disp), func(t *testing.T) {
			parent := newTestPort(t, 0)
			carried, notify := armedPort(t)
			b := startReview2Peer(t, parent)
			c := startSendLanePeer(t, parent)
			releaseOwn := warmLane(t, b.slPeer, carried)
			b.give(carried, dispMakeSend)
			require.Equal(t, uint32(1), b.do(nil, slTake, 1)[1])
			releaseOwn()
			for range 5 { // c's q full: the queue limit
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: c.q, ID: xVia}, -1))
			}
			got := b.do([]Desc{{Name: c.q, Disp: dispCopySend}}, r2PassTimeout, uint32(disp))
			want := uint32(1)
			if disp == dispCopySend {
				want = 2
			}
			require.Equal(t, []uint32{abi.MACH_SEND_TIMED_OUT, want}, got, "timed out, the right handed back")
			tryReceiveNow(carried) // reads what the lane holds (TestSendLaneReview2NoSendersWaitsForAReceive)
			require.True(t, sendersOf(t, carried))
			_, kr := tryReceiveNow(notify)
			require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while b holds its right")
			require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, b.do(nil, slVia))
			require.Equal(t, int32(xVia), receiveWithin(t, carried).ID)
			require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop))
			require.Equal(t, uint32(4), noSendersWithin(t, notify))
		})
	}
}
