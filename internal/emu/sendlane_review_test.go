//go:build linux

package emu

import (
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Adversarial review of send lanes (sendlane.go, commit 6ce5e1e). Each test states the Mach
// behaviour it holds the emulation to, from xnu's source.

// reviewRoleEnv makes a re-executed test binary the review's peer (its own variable, so that the
// roles of sendright_xproc_test.go never see it).
const reviewRoleEnv = "MACHPORT_EMU_SLREVIEW_ROLE"

// The review peer's commands, past the "sendlane" role's (slTake...slDestroyQ), which it also
// does.
const (
	rvGatedDrop          = 100 + iota // wait for the gate, then release every send reference of the right taken; answer the kr
	rvGatedPass                       // [disp]: wait for the gate, then slPass
	rvBackloggedPassExit              // [disp]: wait for the gate, fill the right's lane control channel, slPass, answer, exit
	rvTakeAll                         // receive one message on q; answer each descriptor's name, then the first's send refs
	rvGiveQ                           // [n]: send n messages, each with MAKE_SEND of q, to the port whose send right the command carries; answer the last kr
)

func init() {
	if os.Getenv(reviewRoleEnv) == "" {
		return
	}
	if err := runXprocPeer(peerReview); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// peerReview runs the test's commands until it exits, as peerSendLane does; the gated commands
// first read one byte from fd 4 (the gate), which the test writes once it is ready (holding
// sp.mu, say, which a test cannot do while it sends a command).
func peerReview(parent, q, g uint32) error {
	gate := func(r *slRole) error {
		var b [1]byte
		if _, err := unix.Read(4, b[:]); err != nil {
			return r.fail("gate: %v", err)
		}
		return nil
	}
	return runSendLaneRole(parent, q, g, false, func(r *slRole, m *Msg, op uint32) error {
		switch op {
		case rvGiveQ:
			if len(m.Descs) != 1 {
				return r.fail("give: %d descriptors", len(m.Descs))
			}
			kr := int32(abi.MACH_MSG_SUCCESS)
			for range arg(m, 1) {
				if kr = Send(&Msg{Bits: dispCopySend | abi.MACH_MSGH_BITS_COMPLEX, Remote: m.Descs[0].Name, ID: xGive,
					Descs: []Desc{{Name: q, Disp: dispMakeSend}}}, -1); kr != abi.MACH_MSG_SUCCESS {
					break
				}
			}
			Deallocate(m.Descs[0].Name)
			return r.answer(uint32(kr))
		case rvTakeAll:
			var in Msg
			if err := xprocReceive(q, &in); err != nil {
				return r.fail("take: %v", err)
			}
			var vals []uint32
			for _, d := range in.Descs {
				vals = append(vals, d.Name)
			}
			if len(vals) == 0 {
				return r.fail("take: no descriptor")
			}
			r.name = vals[0]
			refs, _ := GetRefs(r.name, abi.MACH_PORT_RIGHT_SEND)
			return r.answer(append(vals, refs)...)
		case rvGatedDrop:
			if err := gate(r); err != nil {
				return err
			}
			return r.drop()
		case rvGatedPass, rvBackloggedPassExit:
			if len(m.Descs) != 1 {
				return r.fail("pass: %d descriptors", len(m.Descs))
			}
			if err := gate(r); err != nil {
				return err
			}
			if op == rvGatedPass {
				return r.answer(uint32(r.pass(m, arg(m, 1), -1)))
			}
			if n := fillSendLaneCtl(r.name); n == 0 {
				return r.fail("the right %#x is on no send lane", r.name)
			}
			if err := r.answer(uint32(r.pass(m, arg(m, 1), -1))); err != nil {
				return err
			}
			os.Exit(0) // as a client does once its request went
		}
		return r.fail("command %d", op)
	})
}

// fillSendLaneCtl fills the control channel of the send lane the right name sends on with
// well-formed "return 0" datagrams (which give nothing back) until it is full, and returns how
// many it wrote: it stands for the datagrams a holder has sent and its port's process has not
// read yet (that process busy, or stopped).
func fillSendLaneCtl(name uint32) int {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.entries[name]
	if e == nil || e.send == nil || e.send.slane == nil {
		return 0
	}
	n := 0
	for laneCtl(e.send.slane.ctl, sendLaneReturn, 0, -1) == nil {
		n++
	}
	return n
}

// rvPeer is a running review peer: the "sendlane" commands, and a gate.
type rvPeer struct {
	*slPeer
	pid  int
	gate int // the gate pipe's write end
}

// startReviewPeer runs the test binary again as a review peer, as startXprocPeer does, with the
// gate pipe's read end as its fd 4.
func startReviewPeer(t *testing.T, parent uint32) *rvPeer {
	t.Helper()
	var gate [2]int
	require.NoError(t, unix.Pipe2(gate[:], unix.O_CLOEXEC))
	t.Cleanup(func() { unix.Close(gate[1]) })
	cmd, _, q, g := startRolePeer(t, reviewRoleEnv+"=1", parent, os.NewFile(uintptr(gate[0]), "gate"))
	return &rvPeer{slPeer: &slPeer{t: t, parent: parent, q: q, g: g}, pid: cmd.Process.Pid, gate: gate[1]}
}

// command sends the peer a command without waiting for its answer.
func (p *rvPeer) command(descs []Desc, args ...uint32) {
	p.t.Helper()
	require.Equal(p.t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: p.g, ID: xGo,
		Body: u32s(args...), Descs: descs}, -1))
}

// open lets a gated command go on.
func (p *rvPeer) open() {
	p.t.Helper()
	_, err := unix.Write(p.gate, []byte{1})
	require.NoError(p.t, err)
}

// answer receives the peer's answer to a command.
func (p *rvPeer) answer() []uint32 {
	p.t.Helper()
	var m Msg
	require.NoError(p.t, xprocReceive(p.parent, &m))
	require.Equal(p.t, int32(xGot), m.ID, "the peer: %s", m.Body)
	out := make([]uint32, len(m.Body)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(m.Body[4*i:])
	}
	return out
}

// whileLocked runs before holding sp.mu, so that this process's monitor reads no control
// datagram meanwhile, waits (still holding it) for the peer's answer to be queued on parent,
// and runs after.
func whileLocked(t *testing.T, parent uint32, before, after func()) {
	t.Helper()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	before()
	require.True(t, waitReadable(sp.entries[parent].recv.epfd), "the peer answered within 10 s")
	after()
}

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
	kept, open := 0, 0
	waitFor(t, "no send lane kept for the destinations that are gone", func() bool {
		kept, open = 0, 0
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
		return kept+open == 0
	})
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
	waitFor(t, "destinations, all gone, no longer noted on the port", func() bool {
		return len(sp.entries[carried].recv.sendLanes) < dests/2
	})
}

// fdLimit holds this process at its fd limit (exhaust).
type fdLimit struct {
	t     *testing.T
	old   unix.Rlimit
	fills []int
	done  bool
}

// exhaustFDs fills every free fd number of this process, under a soft RLIMIT_NOFILE lowered to
// just above the highest fd open now, so that the next fd this process would make fails with
// EMFILE, as in a busy server at its limit. restore undoes it (also at cleanup).
func exhaustFDs(t *testing.T) *fdLimit {
	t.Helper()
	l := &fdLimit{t: t}
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &l.old))
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	highest := 0
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && n > highest {
			highest = n
		}
	}
	lowered := l.old
	lowered.Cur = uint64(highest + 8)
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &lowered))
	t.Cleanup(l.restore)
	l.topUp()
	return l
}

// topUp takes the fd numbers freed since (by the monitor closing a watch's dup, say).
func (l *fdLimit) topUp() {
	for {
		fd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return
		}
		l.fills = append(l.fills, fd)
	}
}

func (l *fdLimit) restore() {
	if l.done {
		return
	}
	l.done = true
	for _, fd := range l.fills {
		unix.Close(fd)
	}
	require.NoError(l.t, unix.Setrlimit(unix.RLIMIT_NOFILE, &l.old))
}

// unwatchCtl stops the monitor's watch of l's control channel; rewatchCtl starts it again.
// unwatchCtl is called with sp.mu held.
func unwatchCtl(l *sendLane) {
	monitorRemove(l.ctlMon)
	l.ctlMon = 0
}

func rewatchCtl(l *sendLane) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if l.ctl >= 0 && l.ctlMon == 0 {
		l.watchCtl()
	}
}

// sendLaneTo is the send lane into the port name for the peer's port dest. Called with sp.mu held.
func sendLaneTo(name, dest uint32) *sendLane {
	destID := sp.entries[dest].send.id
	return sp.entries[name].recv.sendLanes[destID]
}

// A send right made of tokens, moved on by its holder to a third process while the port's
// process is at its fd limit: in xnu the third process holds a live send right (ipc_right_copyin
// of MACH_MSG_TYPE_MOVE_SEND moves the user reference with its ip_srights count into the
// message, and ipc_right_copyout gives it to the receiver; nothing can be lost between), so the
// port keeps a sender, no-senders does not come (ipc_notify_no_senders only once ip_srights is
// 0, ipc_port_release_send_and_unlock), and the third process's sends arrive. Here the right
// gets a channel whose read end travels to the port's process in an "adopt" datagram on the
// lane's control channel (adoptOut); at the fd limit its recvmsg truncates the fd away
// (MSG_CTRUNC), readSendCtl drops the datagram as malformed, the holder's "return" that follows
// brings the lane's tokens to 0: the port has no senders, no-senders fires, and the third
// process's right is a channel nobody reads.
func TestSendLaneReviewAdoptLostAtFDLimit(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, notify := armedPort(t)
	b := startReviewPeer(t, parent)
	c := startSendLanePeer(t, parent)
	releaseOwn := warmLane(t, b.slPeer, carried)
	b.give(carried, dispMakeSend)
	b.do(nil, slTake, 1)
	releaseOwn()
	require.True(t, sendersOf(t, carried), "b's right, made of a token")

	b.command([]Desc{{Name: c.q, Disp: dispCopySend}}, rvGatedPass, uint32(dispMoveSend))
	// The lane's control channel is read by mach_port_get_attributes (sendersOf), at the limit;
	// its monitor watch is off meanwhile (the monitor closes the watch's dup as it fires, which
	// would give the datagram's fd a number).
	var limit *fdLimit
	var l *sendLane
	whileLocked(t, parent, func() {
		l = sendLaneTo(carried, b.q)
		unwatchCtl(l)
		limit = exhaustFDs(t)
		b.open()
	}, func() {})
	senders := sendersOf(t, carried)
	limit.restore()
	rewatchCtl(l)
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, b.answer())
	assert.True(t, senders, "c's right is a sender")
	_, kr := tryReceiveNow(notify)
	assert.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while c holds its right")
	got := c.do(nil, slTake, 1)
	require.NotEqual(t, uint32(abi.MACH_PORT_DEAD), got[0], "c's right arrived as a dead name")
	require.Equal(t, uint32(1), got[1], "c's right")
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, c.do(nil, slVia), "c sends through its right")
	require.Equal(t, int32(xVia), receiveWithin(t, carried).ID)
}

// u32s encodes vals as a command's or an answer's body.
func u32s(vals ...uint32) []byte {
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

// waitReadable waits at most 10 s for fd to be readable, with poll alone (no fd made).
func waitReadable(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 10_000)
	return err == nil && n == 1
}

// A holder moves a send right made of tokens to a third process and exits at once, as a client
// does once its request went, while its lane's control channel is backlogged (the port's
// process has not read it yet: busy, here holding sp.mu). In xnu the moved right is in the
// message once mach_msg returned (ipc_right_copyin of MOVE_SEND takes the name's reference and
// its ip_srights count into the kmsg; task teardown, ipc_space_terminate, touches only the
// space's own names), so the third process gets a live right, the port keeps a sender, and
// no-senders does not come (ipc_notify_no_senders once ip_srights is 0). Here the right's
// channel reaches the port's process in an "adopt" datagram that the holder queues (ctlQ) when
// its control channel is full, to be sent later by flushCtl; the holder's exit drops the queue
// with the channel's read end: its control channel's hang-up then gives back every token (no
// senders, no-senders fires), and the third process's right arrives as a dead name.
func TestSendLaneReviewAdoptLostWhenHolderExits(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, notify := armedPort(t)
	b := startReviewPeer(t, parent)
	c := startSendLanePeer(t, parent)
	releaseOwn := warmLane(t, b.slPeer, carried)
	b.give(carried, dispMakeSend)
	b.do(nil, slTake, 1)
	releaseOwn()
	pidfd, err := unix.PidfdOpen(b.pid, 0)
	require.NoError(t, err)
	defer unix.Close(pidfd)

	b.command([]Desc{{Name: c.q, Disp: dispCopySend}}, rvBackloggedPassExit, uint32(dispMoveSend))
	whileLocked(t, parent, b.open, func() {
		require.True(t, waitReadable(pidfd), "b exited within 10 s")
	})
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, b.answer())
	got := c.do(nil, slTake, 1) // after b's exit
	assert.NotEqual(t, uint32(abi.MACH_PORT_DEAD), got[0], "c's right arrived as a dead name")
	assert.Equal(t, uint32(1), got[1], "c's right")
	assert.True(t, sendersOf(t, carried), "c's right is a sender")
	_, kr := tryReceiveNow(notify)
	assert.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while c holds its right")
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, c.do(nil, slVia), "c sends through its right")
	require.Equal(t, int32(xVia), receiveWithin(t, carried).ID)
}

// A send lane record names its port twice: by the lane's key and by the port id it carries.
// copyoutRight never lets a peer's record name a port of this process with a channel of the
// peer's ("never taken from a peer that merely claims the port's id"); copyoutSendLane takes the
// id from the record without checking it against its lane's: a peer with a lane into this
// process can hand it a "send right" to one of this process's own ports (here a receive right
// without a send right) that sends into the peer's lane. In xnu a name for a port of the space
// always leads to that port (ipc_right_copyout joins the entry that names the port's receive
// right, ipc_port_copyout_send).
func TestSendLaneReviewTokenClaimingALocalPort(t *testing.T) {
	port := newTestPort(t, 0)
	own, kr := Construct(0, 0, 0) // a receive right, no send right
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(own, 0, 0) })
	l := newFakeSendLane(t)
	l.send(t, port)
	receiveWithin(t, port)
	op, _ := l.readCtl(t)
	require.Equal(t, uint32(sendLaneHello), op)

	sp.mu.Lock()
	l.id = sp.entries[own].recv.id // the forgery: the lane's key, this process's port's id
	sp.mu.Unlock()
	l.send(t, port)
	name := receiveWithin(t, port).Descs[0].Name
	if name == abi.MACH_PORT_DEAD {
		return // refused
	}
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: name, ID: 42}, 0))
	assert.False(t, waitReadableNow(l.data), "a message to this process's own port went into the peer's lane")
	assert.Equal(t, own, name, "the right to its own port is named with the receive right")
}

// waitReadableNow reports whether fd is readable now.
func waitReadableNow(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 1
}

// The same move to a third process, with the port's process one fd short of its limit: the
// adopt datagram's fd fits, and adoptSend installs the channel, but its hang-up watch
// (monitorAdd, which dups the fd) fails, unchecked. When the third process then releases the
// right, the channel's hang-up is never seen: the port counts a sender that is gone, and
// no-senders never comes. In xnu the third process's release is ipc_port_release_send, and
// the port's last send right going fires no-senders (ipc_port_release_send_and_unlock →
// ipc_notify_no_senders).
func TestSendLaneReviewAdoptedChannelUnwatchedAtFDLimit(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, notify := armedPort(t)
	b := startReviewPeer(t, parent)
	c := startSendLanePeer(t, parent)
	releaseOwn := warmLane(t, b.slPeer, carried)
	b.give(carried, dispMakeSend)
	b.do(nil, slTake, 1)
	releaseOwn()

	b.command([]Desc{{Name: c.q, Disp: dispCopySend}}, rvGatedPass, uint32(dispMoveSend))
	var limit *fdLimit
	var l *sendLane
	whileLocked(t, parent, func() {
		l = sendLaneTo(carried, b.q)
		unwatchCtl(l)
		limit = exhaustFDs(t)
		last := len(limit.fills) - 1
		unix.Close(limit.fills[last]) // one fd number free: the adopt datagram's
		limit.fills = limit.fills[:last]
		b.open()
	}, func() {})
	require.True(t, sendersOf(t, carried), "b's right, moved to c") // reads the adopt, at the limit
	limit.restore()
	rewatchCtl(l)
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, b.answer())
	got := c.do(nil, slTake, 1)
	require.Equal(t, uint32(1), got[1], "c's right")
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, c.do(nil, slVia), "c sends through its right")
	require.Equal(t, int32(xVia), receiveWithin(t, carried).ID)
	require.Equal(t, []uint32{abi.KERN_SUCCESS}, c.do(nil, slDrop))
	noSendersWithin(t, notify) // fails after its 10 s when the hang-up is never seen
}

// The port's receive right moves inside its process (a message to another of its ports) while a
// peer holds send rights made of tokens and the lane is kept: in xnu the port, its send rights
// (ip_srights) and its no-senders request stay with the port object whatever name holds its
// receive right (ipc_right_copyin MOVE_RECEIVE, ipc_right_copyout of the receive right), so the
// peer's right still sends to it, new rights made under the new name are tokens on the same
// lane and count, and no-senders comes once the peer releases them all, with the make-send
// count of the rights made since the move: ipc_port_clear_receiver (ipc_port.c), which the
// MOVE_RECEIVE copy-in calls, sets ip_mscount back to 0.
func TestSendLaneReviewReceiveRightMovedInsideItsProcess(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, notify := armedPort(t)
	b := startSendLanePeer(t, parent)
	releaseOwn := warmLane(t, b, carried)
	b.give(carried, dispMakeSend)
	b.do(nil, slTake, 1)
	releaseOwn()

	via := newTestPort(t, 0)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend | abi.MACH_MSGH_BITS_COMPLEX,
		Remote: via, ID: 1, Descs: []Desc{{Name: carried, Disp: dispMoveReceive}}}, 0))
	moved := receiveWithin(t, via).Descs[0].Name
	t.Cleanup(func() { Destruct(moved, 0, 0) })
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, b.do(nil, slVia))
	require.Equal(t, int32(xVia), receiveWithin(t, moved).ID, "b's right sends to the moved port")
	b.give(moved, dispMakeSend)
	d, got := b.do(nil, slTake, 1), uint32(2)
	require.Equal(t, got, d[1], "the new right joins b's name")
	// (warmLane's tokens come back asynchronously: the monitor reads their return.)
	waitFor(t, "both of b's rights are tokens on the one lane", func() bool {
		l := sp.entries[moved].recv.sendLanes[sp.entries[b.q].send.id]
		return l != nil && l.outstanding == 2
	})
	_, kr := tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while b holds its rights")
	require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop))
	require.Equal(t, uint32(1), noSendersWithin(t, notify), "the one right made since the move")
}

// Pins of the token counting against xnu's (ipc_port_make_send_locked and ipc_port_copy_send
// count ip_srights per right; ipc_right_copyout adds a user reference per right to the name
// that holds the port; ipc_port_release_send fires no-senders when ip_srights is 0, with
// ip_mscount): a burst of rights before the peer's hello (channels, the lane's first token,
// tokens) coalesce and count; a message with many rights to the port gives one name a
// reference per right; a "return" racing a new token leaves the new one counted.
func TestSendLaneReviewCounting(t *testing.T) {
	t.Run("burst before hello", func(t *testing.T) {
		parent := newTestPort(t, 0)
		carried, notify := armedPort(t)
		b := startReviewPeer(t, parent)
		for range 5 { // the queue limit: a sixth would wait for b
			b.give(carried, dispMakeSend)
		}
		require.Equal(t, uint32(5), b.do(nil, slTake, 5)[1])
		_, kr := tryReceiveNow(notify)
		require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
		require.True(t, sendersOf(t, carried))
		require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop))
		require.Equal(t, uint32(5), noSendersWithin(t, notify))
	})
	t.Run("many in one message", func(t *testing.T) {
		parent := newTestPort(t, 0)
		carried, notify := armedPort(t)
		b := startReviewPeer(t, parent)
		releaseOwn := warmLane(t, b.slPeer, carried)
		descs := []Desc{{Name: carried, Disp: dispMakeSend}, {Name: carried, Disp: dispMakeSend}, {Name: carried, Disp: dispMakeSend}}
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend | abi.MACH_MSGH_BITS_COMPLEX,
			Remote: b.q, ID: xGive, Descs: descs}, -1))
		got := b.do(nil, rvTakeAll)
		require.Len(t, got, 4)
		require.Equal(t, []uint32{got[0], got[0], got[0], 3}, got, "one name, a reference per right")
		waitFor(t, "three tokens", func() bool { return sendLaneTo(carried, b.q).outstanding == 3 })
		releaseOwn()
		require.True(t, sendersOf(t, carried))
		require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop))
		require.Equal(t, uint32(6), noSendersWithin(t, notify))
	})
	t.Run("return racing a new token", func(t *testing.T) {
		parent := newTestPort(t, 0)
		carried, notify := armedPort(t)
		b := startReviewPeer(t, parent)
		releaseOwn := warmLane(t, b.slPeer, carried)
		b.give(carried, dispMakeSend)
		b.give(carried, dispMakeSend)
		require.Equal(t, uint32(2), b.do(nil, slTake, 2)[1])
		releaseOwn()
		b.give(carried, dispMakeSend) // a token issued before b's return of the two
		require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop))
		require.True(t, sendersOf(t, carried), "the token in flight")
		_, kr := tryReceiveNow(notify)
		require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while a token is in flight")
		got := b.do(nil, slTake, 1)
		require.Equal(t, uint32(1), got[1])
		require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, b.do(nil, slVia))
		require.Equal(t, int32(xVia), receiveWithin(t, carried).ID)
		require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop))
		require.Equal(t, uint32(6), noSendersWithin(t, notify))
	})
}

// A send lane into a peer's port X, kept by this process for one of its own ports P (the
// destination the peer carried X's rights to), once P is destroyed: no token can come on it any
// more (a lane serves one destination, and P is gone), so what it holds should go with P. In xnu
// nothing outlives the destination but its messages, destroyed with it (ipc_port_destroy →
// ipc_mqueue_destroy). Here the lane stays in this process's cache (four fds: its two write ends,
// the counter, the monitor's dup) for as long as X lives, and in the peer's port X (its read ends)
// too: a client's long-lived port handed to per-session ports of a server costs the server four
// fds per ended session, up to sendLaneCacheMax, after which no lane is kept at all.
func TestSendLaneReviewLaneOutlivesItsDestination(t *testing.T) {
	parent := newTestPort(t, 0)
	b := startReviewPeer(t, parent)
	session := newTestPort(t, 0)
	b.command([]Desc{{Name: session, Disp: dispMakeSend}}, rvGiveQ, 2)
	require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, b.answer())
	var names []uint32
	for range 2 {
		names = append(names, receiveWithin(t, session).Descs[0].Name)
	}
	require.Equal(t, names[0], names[1])
	require.Equal(t, b.q, names[0], "b's q, which the test names already")
	sp.mu.Lock()
	qid := sp.entries[b.q].send.id
	kept := 0
	for _, l := range sp.sendLanes {
		if l.id == qid {
			kept++
		}
	}
	sp.mu.Unlock()
	require.Equal(t, 1, kept, "the lane into q for session")
	require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(session, -1, 0))
	b.do(nil, slTake, 0) // a round trip with b
	waitFor(t, "a lane for a destination that is gone let go while q lives", func() bool {
		for _, l := range sp.sendLanes {
			if l.id == qid {
				return false
			}
		}
		return true
	})
}

// A send carrying a MAKE_SEND token that times out on a full destination: xnu's copy-in made the
// right (ipc_port_make_send_locked: ip_mscount and ip_srights up) and ipc_kmsg_copyout_pseudo
// hands it back to the sender, so the port never lacks a sender in between (no no-senders), the
// sender holds one more user reference, and the make-send count includes the right. Each case
// fills the destination's queue otherwise: with tokens of the port (outstanding), or with
// messages without rights (the timed-out token is the lane's only one).
func TestSendLaneReviewTimedOutTokenHandedBack(t *testing.T) {
	for _, withTokens := range []bool{true, false} {
		t.Run(fmt.Sprint("tokens queued ", withTokens), func(t *testing.T) {
			parent := newTestPort(t, 0)
			carried, notify := armedPort(t)
			b := startReviewPeer(t, parent)
			releaseOwn := warmLane(t, b.slPeer, carried)
			mscount := uint32(4)
			for range 5 { // b's q full: the queue limit
				if withTokens {
					b.give(carried, dispMakeSend)
					mscount++
				} else {
					require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: b.q, ID: xVia}, -1))
				}
			}
			releaseOwn()
			if !withTokens {
				noSendersWithin(t, notify) // the test's own was the last
				// Armed: a sync above the make-send count (3) waits for a sender to go
				// (ipc_port_nsrequest fires at once only when sync <= ip_mscount).
				_, kr := RequestNotification(carried, abi.MACH_NOTIFY_NO_SENDERS, 4, notify, dispMakeSendOnce)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			}
			require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(&Msg{Bits: dispCopySend | abi.MACH_MSGH_BITS_COMPLEX,
				Remote: b.q, ID: xGive, Descs: []Desc{{Name: carried, Disp: dispMakeSend}}}, 0))
			refs, _ := GetRefs(carried, abi.MACH_PORT_RIGHT_SEND)
			require.Equal(t, uint32(1), refs, "the right handed back")
			require.True(t, sendersOf(t, carried))
			_, kr := tryReceiveNow(notify)
			require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while rights exist")
			if withTokens {
				require.Equal(t, uint32(5), b.do(nil, slTake, 5)[1])
				require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop))
				_, kr = tryReceiveNow(notify)
				require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while the handed-back right exists")
			}
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(carried, abi.MACH_PORT_RIGHT_SEND, -1))
			require.Equal(t, mscount, noSendersWithin(t, notify))
		})
	}
}
