//go:build linux

package emu

import (
	"encoding/binary"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Send rights carried as tokens on send lanes (sendlane.go), across processes: the peer is this
// test binary again (startXprocPeer), in the role "sendlane", which does one command at a time,
// sent to its port g, and answers the test on its port (xGot, with uint32s; xDone with what went
// wrong). The rights it is given come on its port q.

// The peer's commands (the first uint32 of a command's body).
const (
	slTake     = iota + 1 // [n]: receive n messages on q, each with a send right; answer its name and send refs
	slVia                 // send xVia through the right taken
	slDrop                // release every send reference of the right taken; answer the kr
	slPass                // [disp]: send the right taken, with disp, to the port whose send right the command carries
	slExit                // exit at once, holding everything
	slDestroyQ            // destroy q, with the messages queued on it; answer
)

// peerSendLane runs the test's commands until it exits.
func peerSendLane(parent, q, g uint32) error {
	return runSendLaneRole(parent, q, g, true, func(r *slRole, m *Msg, op uint32) error {
		if op != slDestroyQ {
			return r.fail("command %d", op)
		}
		return r.answer(uint32(Destruct(q, 0, 0)))
	})
}

// slRole is a send-lane peer's side: the send right it took (name), and how it answers.
type slRole struct {
	parent, q, name uint32
	// coalesce: every right slTake takes must arrive under the name the first one got.
	coalesce bool
}

// answer sends the test the values of an answer.
func (r *slRole) answer(vals ...uint32) error {
	return sendErr(Send(&Msg{Bits: dispCopySend, Remote: r.parent, ID: xGot, Body: u32s(vals...)}, -1))
}

// fail tells the test what went wrong, and returns it as the role's error.
func (r *slRole) fail(format string, args ...any) error {
	problem := fmt.Sprintf(format, args...)
	Send(&Msg{Bits: dispCopySend, Remote: r.parent, ID: xDone, Body: []byte(problem)}, -1)
	return fmt.Errorf("%s", problem)
}

// pass sends the right taken, with disp, to the port whose send right m carries.
func (r *slRole) pass(m *Msg, disp uint32, timeout time.Duration) int32 {
	kr := Send(&Msg{Bits: dispCopySend, Remote: m.Descs[0].Name, ID: xGive,
		Descs: []Desc{{Name: r.name, Disp: uint8(disp)}}}, timeout)
	if refs, _ := GetRefs(r.name, abi.MACH_PORT_RIGHT_SEND); refs == 0 {
		r.name = 0
	}
	return kr
}

// drop releases every send reference of the right taken, and answers the kr.
func (r *slRole) drop() error {
	refs, _ := GetRefs(r.name, abi.MACH_PORT_RIGHT_SEND)
	kr := ModRefs(r.name, abi.MACH_PORT_RIGHT_SEND, -int32(refs))
	r.name = 0
	return r.answer(uint32(kr))
}

// arg is argument i of a command.
func arg(m *Msg, i int) uint32 { return binary.LittleEndian.Uint32(m.Body[4*i:]) }

// runSendLaneRole runs the test's commands from g until the role exits: slTake, slVia, slDrop,
// slPass and slExit as the "sendlane" role does them, and any other with other (which answers).
func runSendLaneRole(parent, q, g uint32, coalesce bool, other func(r *slRole, m *Msg, op uint32) error) error {
	r := &slRole{parent: parent, q: q, coalesce: coalesce}
	for {
		var m Msg
		if err := xprocReceive(g, &m); err != nil {
			return err
		}
		var err error
		switch op := arg(&m, 0); op {
		case slTake:
			for range arg(&m, 1) {
				var in Msg
				if err := xprocReceive(q, &in); err != nil {
					return r.fail("take: %v", err)
				}
				if len(in.Descs) != 1 || in.Descs[0].Disp != typePortSend {
					return r.fail("take: %d descriptors", len(in.Descs))
				}
				if r.coalesce && r.name != 0 && in.Descs[0].Name != r.name {
					return r.fail("take: a right named %#x, not %#x", in.Descs[0].Name, r.name)
				}
				r.name = in.Descs[0].Name
			}
			refs, _ := GetRefs(r.name, abi.MACH_PORT_RIGHT_SEND)
			err = r.answer(r.name, refs)
		case slVia:
			err = r.answer(uint32(Send(&Msg{Bits: dispCopySend, Remote: r.name, ID: xVia}, -1)))
		case slDrop:
			err = r.drop()
		case slPass:
			if len(m.Descs) != 1 {
				return r.fail("pass: %d descriptors", len(m.Descs))
			}
			err = r.answer(uint32(r.pass(&m, arg(&m, 1), -1)))
		case slExit:
			os.Exit(0)
		default:
			err = other(r, &m, op)
		}
		if err != nil {
			return err
		}
	}
}

// slPeer is a running "sendlane" peer: its ports q (rights go there) and g (commands).
type slPeer struct {
	t      *testing.T
	parent uint32
	q, g   uint32
}

func startSendLanePeer(t *testing.T, parent uint32) *slPeer {
	q, g, _ := startXprocPeer(t, "sendlane", parent)
	return &slPeer{t: t, parent: parent, q: q, g: g}
}

// do sends the peer a command and returns its answer; descs travel with the command.
func (p *slPeer) do(descs []Desc, args ...uint32) []uint32 {
	p.t.Helper()
	b := make([]byte, 4*len(args))
	for i, v := range args {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	require.Equal(p.t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: p.g, ID: xGo, Body: b, Descs: descs}, -1))
	if args[0] == slExit {
		return nil
	}
	var m Msg
	require.NoError(p.t, xprocReceive(p.parent, &m))
	require.Equal(p.t, int32(xGot), m.ID, "the peer: %s", m.Body)
	out := make([]uint32, len(m.Body)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(m.Body[4*i:])
	}
	return out
}

// give sends a send right to carried, with disp, to the peer's q.
func (p *slPeer) give(carried uint32, disp uint8) {
	p.t.Helper()
	require.Equal(p.t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: p.q, ID: xGive,
		Descs: []Desc{{Name: carried, Disp: disp}}}, -1))
}

// sendersOf reports whether the port has send rights (MACH_PORT_RECEIVE_STATUS's mps_srights).
func sendersOf(t *testing.T, name uint32) bool {
	t.Helper()
	status := make([]int32, abi.MACH_PORT_RECEIVE_STATUS_COUNT)
	_, kr := GetAttributes(name, abi.MACH_PORT_RECEIVE_STATUS, status)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	return status[6] != 0
}

// noSendersWithin waits for the no-senders notification on notify and returns its make-send
// count.
func noSendersWithin(t *testing.T, notify uint32) uint32 {
	t.Helper()
	m := receiveWithin(t, notify)
	require.Equal(t, int32(abi.MACH_NOTIFY_NO_SENDERS), m.ID)
	return binary.LittleEndian.Uint32(m.Body[8:])
}

// armedPort makes a receive right with a no-senders request (sync 1) to a notify port, and
// returns both.
func armedPort(t *testing.T) (carried, notify uint32) {
	t.Helper()
	notify = newTestPort(t, 0)
	return noSendersPort(t, notify), notify
}

// warmLane gives b two send rights to carried, which make b keep a send lane into it, and has b
// release them: b names nothing for carried, and the next rights come as tokens alone. The test
// holds a send right of its own meanwhile (so no-senders does not come), which it releases
// with own. The make-send count is 3 after it.
func warmLane(t *testing.T, b *slPeer, carried uint32) (own func()) {
	t.Helper()
	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(carried, carried, dispMakeSend))
	b.give(carried, dispMakeSend)
	b.give(carried, dispMakeSend)
	b.do(nil, slTake, 2)
	require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop))
	return func() {
		require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(carried, abi.MACH_PORT_RIGHT_SEND, -1))
	}
}

// Send rights carried to a peer that keeps a send lane travel as tokens alone; they coalesce
// under one name with one user reference each, work there, and are the port's only senders
// until the peer releases them: then no-senders comes, with the make-send count of every right
// made (xnu's ipc_right_copyout adds a user reference per send right to the name that already
// holds the port; ipc_port_make_send and ipc_port_copy_send count ip_srights, and
// ipc_notify_no_senders comes when it is back to 0).
func TestSendRightsAsTokens(t *testing.T) {
	cases := []struct {
		name    string
		disp    uint8
		own     uint32 // the test's send rights, made with MAKE_SEND, that the gives use
		mscount uint32
	}{
		{"MakeSend", dispMakeSend, 0, 6},
		{"CopySend", dispCopySend, 1, 4},
		{"MoveSend", dispMoveSend, 3, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := newTestPort(t, 0)
			carried, notify := armedPort(t)
			b := startSendLanePeer(t, parent)
			releaseOwn := warmLane(t, b, carried)
			for range tc.own {
				require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(carried, carried, dispMakeSend))
			}
			for range 3 {
				b.give(carried, tc.disp)
			}
			got := b.do(nil, slTake, 3)
			require.Equal(t, uint32(3), got[1], "a user reference per right, under one name")
			releaseOwn()
			if tc.disp == dispCopySend {
				require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(carried, abi.MACH_PORT_RIGHT_SEND, -int32(tc.own)))
			}
			refs, _ := GetRefs(carried, abi.MACH_PORT_RIGHT_SEND)
			require.Zero(t, refs, "the peer's rights, made of tokens, are the only ones")
			require.True(t, sendersOf(t, carried), "the peer's rights are senders")
			require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, b.do(nil, slVia))
			require.Equal(t, int32(xVia), receiveWithin(t, carried).ID)
			require.True(t, sendersOf(t, carried))
			_, kr := tryReceiveNow(notify)
			require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while the peer holds its rights")
			require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop))
			require.Equal(t, tc.mscount, noSendersWithin(t, notify))
		})
	}
}

// A peer that holds send rights made of tokens, and has more queued unreceived on its port,
// ends: it exits, or destroys the port the rights wait on (its queued messages die with their
// rights, xnu's ipc_port_destroy → ipc_kmsg_destroy, and the peer then drops its own). Every
// token goes back with it, and no-senders comes, with nothing received on the carried port.
func TestSendRightTokensOfAHolderThatEnds(t *testing.T) {
	for _, end := range []string{"exit", "destroy"} {
		t.Run(end, func(t *testing.T) {
			parent := newTestPort(t, 0)
			carried, notify := armedPort(t)
			b := startSendLanePeer(t, parent)
			releaseOwn := warmLane(t, b, carried)
			for range 3 {
				b.give(carried, dispMakeSend)
			}
			b.do(nil, slTake, 3)
			for range 2 {
				b.give(carried, dispMakeSend) // tokens, queued on q and never received
			}
			releaseOwn()
			require.True(t, sendersOf(t, carried))
			if end == "exit" {
				b.do(nil, slExit)
			} else {
				require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDestroyQ))
				require.True(t, sendersOf(t, carried), "the peer's own rights")
				_, kr := tryReceiveNow(notify)
				require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while the peer holds its rights")
				require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop))
			}
			require.Equal(t, uint32(8), noSendersWithin(t, notify))
		})
	}
}

// A send right made of tokens, passed on by its holder to a third process: the third holds a
// live right of its own (xnu's ipc_right_copyin of a send right takes a send reference,
// ip_srights, for the message; the new holder's name keeps it), so no-senders waits for it
// after the first holder released its own, whether the first copied or moved the right.
func TestSendRightTokenPassedToAThirdProcess(t *testing.T) {
	for _, disp := range []uint8{dispCopySend, dispMoveSend} {
		t.Run(fmt.Sprint(disp), func(t *testing.T) {
			parent := newTestPort(t, 0)
			carried, notify := armedPort(t)
			b := startSendLanePeer(t, parent)
			c := startSendLanePeer(t, parent)
			releaseOwn := warmLane(t, b, carried)
			for range 3 {
				b.give(carried, dispMakeSend)
			}
			b.do(nil, slTake, 3)
			releaseOwn()
			require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, b.do([]Desc{{Name: c.q, Disp: dispCopySend}}, slPass, uint32(disp)))
			require.Equal(t, uint32(1), c.do(nil, slTake, 1)[1])
			require.Equal(t, []uint32{abi.KERN_SUCCESS}, b.do(nil, slDrop)) // what b has left
			require.True(t, sendersOf(t, carried), "the third process's right is a sender")
			require.Equal(t, []uint32{abi.MACH_MSG_SUCCESS}, c.do(nil, slVia))
			require.Equal(t, int32(xVia), receiveWithin(t, carried).ID)
			require.True(t, sendersOf(t, carried), "the third process's right is a sender")
			_, kr := tryReceiveNow(notify)
			require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while the third process holds its right")
			require.Equal(t, []uint32{abi.KERN_SUCCESS}, c.do(nil, slDrop))
			require.Equal(t, uint32(6), noSendersWithin(t, notify))
		})
	}
}

// A token in flight when its port dies arrives as MACH_PORT_DEAD (xnu's ipc_kmsg_copyout_object:
// a right whose port is dead copies out as MACH_PORT_DEAD), and the holder's lane is gone with
// the port.
func TestSendRightTokenWhosePortDiesInFlight(t *testing.T) {
	parent := newTestPort(t, 0)
	carried, _ := armedPort(t)
	b := startSendLanePeer(t, parent)
	warmLane(t, b, carried)
	b.give(carried, dispMakeSend) // a token: no descriptor travels
	require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(carried, 0, 0))
	require.Equal(t, []uint32{abi.MACH_PORT_DEAD, 0}, b.do(nil, slTake, 1))
}

// The wire: a send right to a port of this process carried to another process's port travels
// as a channel the first time, with the send lane's write ends (and the port's counter) the
// second, and as a token alone once the peer said hello. The port counts the tokens as senders
// until the peer gives them back, and never fewer than 0 (a peer gives back no more than it
// was given).
func TestSendRightTokenOnTheWire(t *testing.T) {
	carried, notify := armedPort(t)
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
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: req.Remote, ID: 8,
			Descs: []Desc{{Name: carried, Disp: dispMakeSend}}}, -1))
		return readDatagram(t, fds[0])
	}
	d, got := carry()
	require.Equal(t, uint8(kindPort), d.descs[0].kind, "the first carry: a channel")
	require.Len(t, got, 2)
	held := got // the peer's first right, released at the end
	d, got = carry()
	require.Equal(t, uint8(kindSendLane), d.descs[0].kind, "the second: a send lane")
	require.Len(t, got, 3, "the lane's data and control write ends, and the counter")
	key := d.descs[0].laneKey
	data, ctl := got[d.descs[0].fd], got[d.descs[0].fd+1]
	unix.Close(got[d.descs[0].counterFD])
	defer unix.Close(data)
	defer unix.Close(ctl)
	// Before the hello, a right goes as a channel again.
	d, got = carry()
	require.Equal(t, uint8(kindPort), d.descs[0].kind, "before the hello")
	for _, fd := range got {
		unix.Close(fd)
	}
	require.NoError(t, laneCtl(ctl, sendLaneHello, 0, -1))
	for range 2 {
		d, got = carry()
		require.Equal(t, uint8(kindSendLane), d.descs[0].kind, "after the hello: a token")
		require.Empty(t, got, "no descriptor")
		require.Equal(t, key, d.descs[0].laneKey)
	}
	require.True(t, sendersOf(t, carried), "3 tokens outstanding")
	require.NoError(t, laneCtl(ctl, sendLaneReturn, 2, -1))
	require.True(t, sendersOf(t, carried), "1 token outstanding")
	_, kr := tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
	require.NoError(t, laneCtl(ctl, sendLaneReturn, 5, -1))
	require.True(t, sendersOf(t, carried), "the first right's channel")
	for _, fd := range held {
		unix.Close(fd)
	}
	require.Equal(t, uint32(5), noSendersWithin(t, notify))
	require.False(t, sendersOf(t, carried))
}

// fakeSendLane plays a port's process that made a send lane: the test holds the read ends.
type fakeSendLane struct {
	key                uint64
	id                 portID
	data, ctl          int // read ends
	dataW, ctlW, ctrFD int // write ends and counter, until sent
}

func newFakeSendLane(t *testing.T) *fakeSendLane {
	t.Helper()
	data, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	ctl, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	ctr, err := newCounter(5)
	require.NoError(t, err)
	fd, err := unix.Dup(ctr.fd)
	require.NoError(t, err)
	ctr.close()
	l := &fakeSendLane{key: randomToken(), id: newPortID(), data: data[0], ctl: ctl[0], dataW: data[1], ctlW: ctl[1], ctrFD: fd}
	t.Cleanup(func() {
		for _, fd := range []int{l.data, l.ctl, l.dataW, l.ctlW, l.ctrFD} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
	})
	return l
}

// send sends dest (a port of this process) a message with a send right on the lane: with the
// lane's write ends and counter the first time.
func (l *fakeSendLane) send(t *testing.T, dest uint32) {
	t.Helper()
	ch, ok := ChannelFD(dest)
	require.True(t, ok)
	r := record{kind: kindSendLane, typ: typePortSend, fd: -1, counterFD: -1, id: l.id, laneKey: l.key}
	var oob []byte
	nfds := 0
	if l.dataW >= 0 {
		r.fd, r.counterFD = 0, 2
		oob, nfds = unix.UnixRights(l.dataW, l.ctlW, l.ctrFD), 3
	}
	dg := datagram{id: xGive, bodyFD: -1, nfds: nfds, reply: record{fd: -1, counterFD: -1}, descs: []record{r}}
	require.NoError(t, unix.Sendmsg(ch, dg.encode(nil), oob, nil, unix.MSG_NOSIGNAL))
	for _, fd := range []*int{&l.dataW, &l.ctlW, &l.ctrFD} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// readCtl reads the next control datagram the holder sent: its op and count.
func (l *fakeSendLane) readCtl(t *testing.T) (op uint32, n uint64) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(l.ctl), Events: unix.POLLIN}}
	k, err := unix.Poll(fds, 10_000)
	require.NoError(t, err)
	require.Equal(t, 1, k, "a control datagram within 10 s")
	var b [laneCtlSize]byte
	got, err := unix.Read(l.ctl, b[:])
	require.NoError(t, err)
	require.Equal(t, laneCtlSize, got)
	return binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint64(b[8:])
}

// The holder's side of a send lane: a process that gets send rights on a lane it keeps says
// hello, names them under one name, and gives their tokens back in one "return" when the
// right goes; a message destroyed unreceived gives its token back at once; past
// sendLaneCacheMax, the holder says it does not keep the lane, and the lane closes with the one
// right made of it.
func TestSendLaneHolder(t *testing.T) {
	t.Run("kept", func(t *testing.T) {
		port := newTestPort(t, 0)
		l := newFakeSendLane(t)
		l.send(t, port)
		first := receiveWithin(t, port).Descs[0].Name
		op, _ := l.readCtl(t)
		require.Equal(t, uint32(sendLaneHello), op)
		for range 3 {
			l.send(t, port)
			require.Equal(t, first, receiveWithin(t, port).Descs[0].Name, "one name")
		}
		refs, _ := GetRefs(first, abi.MACH_PORT_RIGHT_SEND)
		require.Equal(t, uint32(4), refs)
		// Two tokens in messages destroyed unreceived.
		q := newTestPort(t, 0)
		l.send(t, q)
		l.send(t, q)
		require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(q, -1, 0))
		for range 2 {
			op, n := l.readCtl(t)
			require.Equal(t, []uint64{sendLaneReturn, 1}, []uint64{uint64(op), n})
		}
		require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(first, abi.MACH_PORT_RIGHT_SEND, -4))
		op, n := l.readCtl(t)
		require.Equal(t, []uint64{sendLaneReturn, 4}, []uint64{uint64(op), n}, "one return for the name's four")
		require.False(t, closedPeer(l.data), "the lane stays kept")
	})
	t.Run("its port dies", func(t *testing.T) {
		// The port the lane's tokens come through dies: no token can come any more, and the
		// holder lets the lane go once its last right made of it goes.
		port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		l := newFakeSendLane(t)
		l.send(t, port)
		name := receiveWithin(t, port).Descs[0].Name
		op, _ := l.readCtl(t)
		require.Equal(t, uint32(sendLaneHello), op)
		require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(port, -1, 0))
		require.False(t, closedPeer(l.data), "a right still sends on it")
		require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(name))
		op, n := l.readCtl(t)
		require.Equal(t, []uint64{sendLaneReturn, 1}, []uint64{uint64(op), n})
		require.True(t, closedPeer(l.data), "let go")
	})
	t.Run("full", func(t *testing.T) {
		defer func(n int) { sendLaneCacheMax = n }(sendLaneCacheMax)
		sendLaneCacheMax = 0
		port := newTestPort(t, 0)
		l := newFakeSendLane(t)
		l.send(t, port)
		name := receiveWithin(t, port).Descs[0].Name
		op, _ := l.readCtl(t)
		require.Equal(t, uint32(sendLaneNoKeep), op)
		require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(name))
		op, n := l.readCtl(t)
		require.Equal(t, []uint64{sendLaneReturn, 1}, []uint64{uint64(op), n})
		require.True(t, closedPeer(l.data), "the lane closes with its one right")
	})
}

// A message to another process carries 126 send rights (mach's Linux differences): a send
// lane's first token takes three fds where a channel takes two, so a message that carries as
// many rights as it may makes no lane beyond the fds it has to spare.
func TestSendLanesKeepTheRightsLimit(t *testing.T) {
	server := newTestPort(t, 0)
	dest := newPortID()
	descs := make([]Desc, 126)
	for i := range descs {
		name, kr := Construct(0, 0, 0)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		t.Cleanup(func() { Destruct(name, 0, 0) })
		descs[i] = Desc{Name: name, Disp: dispMakeSend}
	}
	for i := range 3 { // the first notes the destination; the next would make lanes
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), sendWithReplyFD(server, 7, nil, fds[1], dest))
		unix.Close(fds[1])
		req := receiveWithin(t, server)
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce | abi.MACH_MSGH_BITS_COMPLEX,
			Remote: req.Remote, ID: 8, Descs: descs}, -1), "message %d", i)
		d, got := readDatagram(t, fds[0])
		require.Len(t, d.descs, 126)
		require.LessOrEqual(t, len(got), maxFDs)
		for _, fd := range got {
			unix.Close(fd)
		}
		unix.Close(fds[0])
	}
}
