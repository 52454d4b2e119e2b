//go:build linux

package emu

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// A conformance suite for send rights that cross processes: the Mach semantics a change in how
// the emulation carries them (issue 18's send-right tokens over lanes) must keep. Process A is
// the test, owner of the receive right; B and C are this test binary run again as scripted peers
// (srconfPeer), which do what the test asks of them one command at a time and answer on A's port
// "parent". Every expectation is settled from xnu's source, cited per test.
//
// A receive right cannot move to another process in the emulation (mach/doc.go,
// ErrMoveReceiveUnsupported); the re-registration case therefore moves A's receive right inside
// A, which re-homes the port under a new name while another process holds a send right to it.

// srconfRoleEnv makes a re-executed test binary a scripted peer (its own variable, so that the
// roles of sendright_xproc_test.go and copyin_pair_xproc_test.go never see it).
const srconfRoleEnv = "MACHPORT_EMU_SRCONF_ROLE"

// The peer's commands (a command's message id), its answers, and the ids of the messages it
// sends on the test's behalf.
const (
	srHold    = 5000 + iota // keep the command's rights; answer name, type, send refs of each
	srRefs                  // [name]: answer kr of Type, type, send refs, dead-name refs
	srGive                  // [dest, name, disp, count, asReply, now]: send it; answer kr, descriptors' names
	srModRefs               // [name, right, delta]: answer kr
	srSendVia               // [name, id, (disp)]: send a message through name; answer kr
	srRecv                  // [port]: receive one message; answer id, reply name and type, (dead name), name, type, send refs per descriptor
	srDestroy               // [name]: destroy the receive right; answer kr
	srDeadReq               // [name]: request a dead-name notification to the peer's port n; answer kr
	srExit                  // exit at once, holding everything, without an answer
	srAnswer                // peer → test: the answer, uint32s
	srFailed                // peer → test: the command failed; the body says why
	srCarry                 // peer → anyone: a message that carries a right
)

// The peer's own receive rights, named in a command's arguments.
const (
	srMyQ = 0xffffff01 + iota // the command port
	srMyG                     // the box: messages sent here wait until the test says receive
	srMyN                     // the notify port of dead-name requests (no right to it leaves the peer)
)

func init() {
	if os.Getenv(srconfRoleEnv) == "" {
		return
	}
	if err := runXprocPeer(srconfPeer); err != nil {
		fmt.Fprintln(os.Stderr, "srconf peer:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// srconfPeer runs the test's commands on q until the test ends it.
func srconfPeer(parent, q, g uint32) error {
	n, kr := Construct(0, 0, 0)
	if kr != abi.KERN_SUCCESS {
		return fmt.Errorf("construct: %#x", kr)
	}
	mine := map[uint32]uint32{srMyQ: q, srMyG: g, srMyN: n}
	arg := func(m *Msg, i int) uint32 {
		v := binary.LittleEndian.Uint32(m.Body[4*i:])
		if own, ok := mine[v]; ok {
			return own
		}
		return v
	}
	size := func(int, int, int) int { return 0 }
	for {
		var m Msg
		if _, kr := Receive(context.Background(), q, 1<<20, size, false, -1, &m); kr != abi.MACH_MSG_SUCCESS {
			return fmt.Errorf("receive a command: %#x", kr)
		}
		var out []uint32
		var problem string
		switch m.ID {
		case srHold:
			for _, d := range m.Descs {
				refs, _ := GetRefs(d.Name, abi.MACH_PORT_RIGHT_SEND)
				out = append(out, d.Name, uint32(d.Disp), refs)
			}
		case srRefs:
			name := arg(&m, 0)
			typ, kr := Type(name)
			send, _ := GetRefs(name, abi.MACH_PORT_RIGHT_SEND)
			dead, _ := GetRefs(name, abi.MACH_PORT_RIGHT_DEAD_NAME)
			out = []uint32{uint32(kr), typ, send, dead}
		case srGive:
			dest, name, disp, count := arg(&m, 0), arg(&m, 1), arg(&m, 2), arg(&m, 3)
			c := Msg{Bits: dispCopySend, Remote: dest, ID: srCarry}
			if arg(&m, 4) != 0 {
				c.Bits |= disp << 8
				c.Local = name
			} else {
				for range count {
					c.Descs = append(c.Descs, Desc{Name: name, Disp: uint8(disp)})
				}
			}
			timeout := time.Duration(-1)
			if len(m.Body) > 20 && arg(&m, 5) != 0 {
				timeout = 0
			}
			out = []uint32{uint32(Send(&c, timeout))}
			for _, d := range c.Descs {
				out = append(out, d.Name)
			}
		case srModRefs:
			out = []uint32{uint32(ModRefs(arg(&m, 0), arg(&m, 1), int32(arg(&m, 2))))}
		case srSendVia:
			bits := uint32(dispCopySend)
			if len(m.Body) > 8 {
				bits = arg(&m, 2)
			}
			out = []uint32{uint32(Send(&Msg{Bits: bits, Remote: arg(&m, 0), ID: int32(arg(&m, 1))}, -1))}
		case srRecv:
			var in Msg
			if _, kr := Receive(context.Background(), arg(&m, 0), 1<<20, size, false, 10*time.Second, &in); kr != abi.MACH_MSG_SUCCESS {
				problem = fmt.Sprintf("receive: %#x", kr)
				break
			}
			out = []uint32{uint32(in.ID), in.Remote, in.Bits >> 8 & 0x1f}
			if in.ID == abi.MACH_NOTIFY_DEAD_NAME {
				out = append(out, binary.LittleEndian.Uint32(in.Body[8:])) // the dead name
			}
			for _, d := range in.Descs {
				refs, _ := GetRefs(d.Name, abi.MACH_PORT_RIGHT_SEND)
				out = append(out, d.Name, uint32(d.Disp), refs)
			}
		case srDestroy:
			out = []uint32{uint32(Destruct(arg(&m, 0), 0, 0))}
		case srDeadReq:
			_, kr := RequestNotification(arg(&m, 0), abi.MACH_NOTIFY_DEAD_NAME, 1, n, dispMakeSendOnce)
			out = []uint32{uint32(kr)}
		case srExit:
			os.Exit(0)
		default:
			problem = fmt.Sprintf("unknown command %d", m.ID)
		}
		answer := Msg{Bits: dispCopySend, Remote: parent, ID: srAnswer}
		if problem != "" {
			answer.ID, answer.Body = srFailed, []byte(problem)
		}
		for _, v := range out {
			answer.Body = binary.LittleEndian.AppendUint32(answer.Body, v)
		}
		if err := sendErr(Send(&answer, -1)); err != nil {
			return err
		}
	}
}

// srPeer is a running scripted peer, seen from the test.
type srPeer struct {
	t      *testing.T
	parent uint32 // the test's port the peer answers on
	q, g   uint32 // the test's send rights to the peer's command port and box
	cmd    *exec.Cmd
	exited <-chan struct{}
}

// startSrPeer runs a scripted peer answering on parent. It is killed at cleanup if still running.
func startSrPeer(t *testing.T, parent uint32) *srPeer {
	t.Helper()
	cmd, exited, q, g := startRolePeer(t, srconfRoleEnv+"=1", parent)
	return &srPeer{t: t, parent: parent, q: q, g: g, cmd: cmd, exited: exited}
}

// do runs one command with its arguments and the rights in descs, and returns the answer.
func (p *srPeer) do(op int32, descs []Desc, args ...uint32) []uint32 {
	p.t.Helper()
	m := Msg{Bits: dispCopySend, Remote: p.q, ID: op, Descs: descs}
	for _, a := range args {
		m.Body = binary.LittleEndian.AppendUint32(m.Body, a)
	}
	require.Equal(p.t, int32(abi.MACH_MSG_SUCCESS), Send(&m, -1), "command %d", op)
	var in Msg
	require.NoError(p.t, xprocReceive(p.parent, &in))
	require.Equal(p.t, int32(srAnswer), in.ID, "command %d: %s", op, in.Body)
	out := make([]uint32, len(in.Body)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(in.Body[4*i:])
	}
	return out
}

// hold gives the peer the rights in descs and returns the peer's name for each, checking that
// each arrived as a send right.
func (p *srPeer) hold(descs ...Desc) []uint32 {
	p.t.Helper()
	out := p.do(srHold, descs)
	names := make([]uint32, 0, len(descs))
	for i := 0; i < len(out); i += 3 {
		require.Equal(p.t, uint32(typePortSend), out[i+1], "the right arrived as a send right")
		names = append(names, out[i])
	}
	return names
}

// refs returns the kr of Type(name) in the peer, its type, and its send and dead-name references.
func (p *srPeer) refs(name uint32) (kr int32, typ, send, dead uint32) {
	p.t.Helper()
	out := p.do(srRefs, nil, name)
	return int32(out[0]), out[1], out[2], out[3]
}

// give makes the peer send one message to dest (its name) carrying count copies of its right
// name with disp in port descriptors, or, asReply, as the header's reply right.
func (p *srPeer) give(dest, name, disp, count uint32, asReply bool) {
	p.t.Helper()
	require.Equal(p.t, uint32(abi.MACH_MSG_SUCCESS), p.do(srGive, nil, dest, name, disp, count, uint32(b2u(asReply)))[0])
}

// giveNow is give of one right in a descriptor, failing at once where the send would wait; it
// returns the send's kr and the name of the descriptor's right after it (handed back if the send
// timed out).
func (p *srPeer) giveNow(dest, name, disp uint32) (int32, uint32) {
	p.t.Helper()
	out := p.do(srGive, nil, dest, name, disp, 1, 0, 1)
	return int32(out[0]), out[1]
}

// sendVia makes the peer send a message with id through its right name, and returns the kr.
func (p *srPeer) sendVia(name uint32, id int32) int32 {
	p.t.Helper()
	return int32(p.do(srSendVia, nil, name, uint32(id))[0])
}

// modRefs makes the peer change its references of name; it must succeed.
func (p *srPeer) modRefs(name, right uint32, delta int32) {
	p.t.Helper()
	require.Equal(p.t, uint32(abi.KERN_SUCCESS), p.do(srModRefs, nil, name, right, uint32(delta))[0])
}

// srRecvd is a message a peer received, as it saw it.
type srRecvd struct {
	id           int32
	reply, rtype uint32
	dead         uint32 // the name a dead-name notification names
	descs        [][3]uint32
}

// recv makes the peer receive one message on its port (srMyG, srMyN).
func (p *srPeer) recv(port uint32) srRecvd {
	p.t.Helper()
	out := p.do(srRecv, nil, port)
	r := srRecvd{id: int32(out[0]), reply: out[1], rtype: out[2]}
	out = out[3:]
	if r.id == abi.MACH_NOTIFY_DEAD_NAME {
		r.dead, out = out[0], out[1:]
	}
	for i := 0; i < len(out); i += 3 {
		r.descs = append(r.descs, [3]uint32{out[i], out[i+1], out[i+2]})
	}
	return r
}

// exit makes the peer exit holding everything, and waits until it has.
func (p *srPeer) exit() {
	p.t.Helper()
	require.Equal(p.t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: p.q, ID: srExit}, -1))
	p.wait()
}

// kill ends the peer with SIGKILL, and waits until it has.
func (p *srPeer) kill() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGKILL))
	p.wait()
}

// gone reports whether the peer has exited.
func (p *srPeer) gone() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

func (p *srPeer) wait() {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Fatal("the peer did not exit in 10 s")
	}
}

// srLeakCheck fails the test if it leaves port names or descriptors behind. It must be called
// first, so that its cleanup runs after every other (the peers are gone by then); a hang-up is
// seen by the emulation's monitor a moment after the peer's end, hence the bounded wait.
func srLeakCheck(t *testing.T) {
	t.Helper()
	names := func() []uint32 { n, _ := Names(); slices.Sort(n); return n }
	before, fds := names(), openFDs(t)
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for !slices.Equal(names(), before) || openFDs(t) > fds {
			if time.Now().After(deadline) {
				t.Errorf("leak: names %#x before, %#x after; %d fds before, %d after", before, names(), fds, openFDs(t))
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// srWarm makes the emulation start what it keeps for the process's life (the hang-up monitor,
// the poller) before a leak check counts descriptors.
func srWarm(t *testing.T) {
	t.Helper()
	parent := newTestPort(t, 0)
	p := startSrPeer(t, parent)
	p.hold(Desc{Name: parent, Disp: dispMakeSend})
	notify := newTestPort(t, 0)
	_, kr := RequestNotification(p.q, abi.MACH_NOTIFY_DEAD_NAME, 1, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	p.kill()
	m := receiveWithin(t, notify)
	require.Equal(t, int32(abi.MACH_NOTIFY_DEAD_NAME), m.ID)
	Deallocate(p.q) // the dead name and the notification's reference
	Deallocate(p.q)
}

// srPort is A's port P under test: a receive right (no send right in A) whose no-senders
// request, armed with sync 1, goes to P itself. A message through a send right is thus queued on
// P before any no-senders that comes after it, and a no-senders that came too early is received
// ahead of such a message (the local queue is received first, mach/doc.go).
func srPort(t *testing.T) uint32 {
	t.Helper()
	return noSendersPort(t, abi.MACH_PORT_NULL)
}

// noSendersPort makes a receive right, destroyed when the test ends, whose no-senders request,
// armed with sync 1, goes to notify, or to the port itself when notify is MACH_PORT_NULL.
func noSendersPort(t *testing.T, notify uint32) uint32 {
	t.Helper()
	p, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(p, 0, 0) })
	if notify == abi.MACH_PORT_NULL {
		notify = p
	}
	_, kr = RequestNotification(p, abi.MACH_NOTIFY_NO_SENDERS, 1, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	return p
}

// srExpect receives the next message on port and checks its id: a message sent through a
// right (not a premature no-senders), or no-senders with its make-send count.
func srExpect(t *testing.T, port uint32, id int32, mscount uint32) {
	t.Helper()
	m := receiveWithin(t, port)
	require.Equal(t, id, m.ID, "the next message on the port (%d is no-senders)", abi.MACH_NOTIFY_NO_SENDERS)
	if id == abi.MACH_NOTIFY_NO_SENDERS {
		require.Equal(t, mscount, binary.LittleEndian.Uint32(m.Body[8:]), "the make-send count")
	}
}

// srNothing checks that nothing is queued on port once a round trip with peer has passed.
func srNothing(t *testing.T, port uint32, peer *srPeer) {
	t.Helper()
	peer.refs(srMyQ)
	m, kr := tryReceiveNow(port)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "a message (id %d) on the port", m.ID)
}

// receiveStatus returns P's make-send count and whether it has send rights (mps_mscount,
// mps_srights of MACH_PORT_RECEIVE_STATUS).
func receiveStatus(t *testing.T, port uint32) (mscount, srights uint32) {
	t.Helper()
	info := statusInfo(t, port)
	return uint32(info[2]), uint32(info[6])
}

// statusInfo returns port's MACH_PORT_RECEIVE_STATUS (mach_port_status_t, in natural_t units).
func statusInfo(t *testing.T, port uint32) []int32 {
	t.Helper()
	info := make([]int32, abi.MACH_PORT_RECEIVE_STATUS_COUNT)
	_, kr := GetAttributes(port, abi.MACH_PORT_RECEIVE_STATUS, info)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	return info
}

// No-senders comes exactly once, with the make-send count, and only when the last send right
// anywhere is gone: held by a process, queued in a message, or carried in one.
//
// xnu: a send right counts in ip_srights from copy-in until it is released
// (ipc_port.c ipc_port_make_send_locked: ip_mscount++ and ip_srights++; ipc_port_copy_send:
// ip_srights++), and ipc_port_release_send sends no-senders (ipc_notify_no_senders, with
// ip_mscount) only when ip_srights drops to 0, clearing ip_nsrequest so it fires once. A right
// in a message is released with the message: ipc_kmsg_destroy / ipc_kmsg_clean when the port
// it is queued on is destroyed (ipc_port.c ipc_port_destroy → ipc_port_clear_receiver →
// ipc_mqueue_destroy_locked reaps the queue), and a task's rights by
// ipc_space_terminate → ipc_right_terminate at its exit, however it exits. A right sent back to
// the port's receiver is copied out under the receive right's name (ipc_object.c
// ipc_object_copyout → ipc_right.c ipc_right_reverse, which answers ip_receiver_name in the
// receiver's space; ipc_right_copyout adds the send bit) and keeps counting until released there.
// A send that fails leaves its rights counted with the sender: to a dead name, ipc_kmsg.c
// ipc_kmsg_copyin_header fails with MACH_SEND_INVALID_DEST before any right moves; a send that
// times out is copied out again into the sender's space (ipc/mach_msg.c mach_msg_overwrite_trap:
// ipc_kmsg_send fails, ipc_kmsg_copyout_pseudo), its MOVE_SEND right under a name of the sender.
// A destination moved with MOVE_SEND is released only as its message is received
// (ipc_object.c ipc_object_copyout_dest: ipc_port_release_send).
func TestSendRightConformanceNoSenders(t *testing.T) {
	srWarm(t)
	cases := []struct {
		name string
		run  func(t *testing.T, p uint32, b, c *srPeer)
	}{
		{"CopiedBToCThenBDrops", func(t *testing.T, p uint32, b, c *srPeer) {
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
			b.give(bcg, bp, dispCopySend, 1, false)
			got := c.recv(srMyG)
			require.Len(t, got.descs, 1)
			cp := got.descs[0][0]
			require.Equal(t, [3]uint32{cp, typePortSend, 1}, got.descs[0])
			b.modRefs(bp, abi.MACH_PORT_RIGHT_SEND, -1)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), c.sendVia(cp, 1))
			srExpect(t, p, 1, 0) // not no-senders: C still holds one
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), c.sendVia(cp, 2))
			c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -1)
			srExpect(t, p, 2, 0)
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"MovedBToC", func(t *testing.T, p uint32, b, c *srPeer) {
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
			b.give(bcg, bp, dispMoveSend, 1, false)
			kr, _, _, _ := b.refs(bp)
			require.Equal(t, int32(abi.KERN_INVALID_NAME), kr, "MOVE_SEND of the last reference frees B's name")
			got := c.recv(srMyG)
			require.Len(t, got.descs, 1)
			cp := got.descs[0][0]
			require.Equal(t, [3]uint32{cp, typePortSend, 1}, got.descs[0])
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), c.sendVia(cp, 1))
			c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -1)
			srExpect(t, p, 1, 0)
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"QueuedAtCThenCsPortDestroyed", func(t *testing.T, p uint32, b, c *srPeer) {
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
			b.give(bcg, bp, dispCopySend, 1, false)
			b.modRefs(bp, abi.MACH_PORT_RIGHT_SEND, -1)
			srNothing(t, p, b) // the queued message holds a send right
			require.Equal(t, uint32(abi.KERN_SUCCESS), c.do(srDestroy, nil, srMyG)[0])
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"QueuedAtCThenCKilled", func(t *testing.T, p uint32, b, c *srPeer) {
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
			b.give(bcg, bp, dispMoveSend, 1, false)
			srNothing(t, p, b)
			c.kill()
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"CarriedToTheOwner", func(t *testing.T, p uint32, b, c *srPeer) {
			r := newTestPort(t, 0)
			bp, br := b.hold(Desc{Name: p, Disp: dispMakeSend}), b.hold(Desc{Name: r, Disp: dispMakeSend})
			b.give(br[0], bp[0], dispCopySend, 1, false)
			m := receiveWithin(t, r)
			require.Equal(t, []Desc{{Name: p, Disp: typePortSend}}, m.Descs, "under the receive right's name")
			b.modRefs(bp[0], abi.MACH_PORT_RIGHT_SEND, -1)
			srNothing(t, p, b) // A holds one now
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: p, ID: 1}, -1))
			srExpect(t, p, 1, 0)
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(p, abi.MACH_PORT_RIGHT_SEND, -1))
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"OwnerKeepsOneWhileBDrops", func(t *testing.T, p uint32, b, c *srPeer) {
			require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(p, p, dispMakeSend))
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			b.modRefs(bp, abi.MACH_PORT_RIGHT_SEND, -1)
			srNothing(t, p, b)
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(p, abi.MACH_PORT_RIGHT_SEND, -1))
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 2)
		}},
		{"InFlightToCWhileCDropsItsOwn", func(t *testing.T, p uint32, b, c *srPeer) {
			// C names the port already; B's right to it reaches C after C dropped its own.
			cp := c.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
			b.give(bcg, bp, dispCopySend, 1, false)
			c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -1)
			b.modRefs(bp, abi.MACH_PORT_RIGHT_SEND, -1)
			srNothing(t, p, b) // the queued message holds a send right
			got := c.recv(srMyG)
			require.Len(t, got.descs, 1)
			cp = got.descs[0][0]
			require.Equal(t, [3]uint32{cp, typePortSend, 1}, got.descs[0], "a live send right")
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), c.sendVia(cp, 1))
			c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -1)
			srExpect(t, p, 1, 0)
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 2)
		}},
		{"CopiedBToCThenCExits", func(t *testing.T, p uint32, b, c *srPeer) {
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
			b.give(bcg, bp, dispCopySend, 3, false)
			got := c.recv(srMyG)
			require.Len(t, got.descs, 3)
			require.Equal(t, uint32(3), got.descs[2][2], "three rights in one message, one name")
			b.modRefs(bp, abi.MACH_PORT_RIGHT_SEND, -1)
			srNothing(t, p, b)
			c.exit()
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"QueuedAtTheOwnerThenItsPortDestroyed", func(t *testing.T, p uint32, b, c *srPeer) {
			r, kr := Construct(0, 0, 0)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			bp, br := b.hold(Desc{Name: p, Disp: dispMakeSend}), b.hold(Desc{Name: r, Disp: dispMakeSend})
			b.give(br[0], bp[0], dispCopySend, 2, false)
			b.modRefs(bp[0], abi.MACH_PORT_RIGHT_SEND, -1)
			srNothing(t, p, b) // the message queued at A's own port r holds two
			require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(r, 0, 0))
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"ManyRightsInFlightAndDropped", func(t *testing.T, p uint32, b, c *srPeer) {
			// 100 rights in four messages, half taken and dropped while the rest wait: the
			// count of the port's senders must balance to the last one.
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
			for range 4 {
				b.give(bcg, bp, dispCopySend, 25, false)
			}
			var cp uint32
			for range 2 {
				got := c.recv(srMyG)
				require.Len(t, got.descs, 25)
				cp = got.descs[0][0]
			}
			kr, _, send, _ := c.refs(cp)
			require.Equal(t, [2]uint32{abi.KERN_SUCCESS, 50}, [2]uint32{uint32(kr), send})
			c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -50)
			b.modRefs(bp, abi.MACH_PORT_RIGHT_SEND, -1)
			srNothing(t, p, b) // two messages still hold 50
			for range 2 {
				got := c.recv(srMyG)
				require.Len(t, got.descs, 25)
				cp = got.descs[0][0]
			}
			kr, _, send, _ = c.refs(cp)
			require.Equal(t, [2]uint32{abi.KERN_SUCCESS, 50}, [2]uint32{uint32(kr), send})
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), c.sendVia(cp, 1))
			c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -49)
			srExpect(t, p, 1, 0)
			srNothing(t, p, b) // one reference left
			c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -1)
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"SendToADeadPortLeavesTheRight", func(t *testing.T, p uint32, b, c *srPeer) {
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
			require.Equal(t, uint32(abi.KERN_SUCCESS), c.do(srDestroy, nil, srMyG)[0])
			kr, name := b.giveNow(bcg, bp, dispMoveSend)
			require.Equal(t, int32(abi.MACH_SEND_INVALID_DEST), kr)
			require.Equal(t, bp, name)
			_, _, send, _ := b.refs(bp)
			require.Equal(t, uint32(1), send, "the failed send moved nothing")
			srNothing(t, p, b)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), b.sendVia(bp, 1))
			b.modRefs(bp, abi.MACH_PORT_RIGHT_SEND, -1)
			srExpect(t, p, 1, 0)
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"TimedOutSendHandsTheRightBack", func(t *testing.T, p uint32, b, c *srPeer) {
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
			for i := range abi.MACH_PORT_QLIMIT_DEFAULT {
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), b.sendVia(bcg, int32(100+i)), "fill C's box")
			}
			kr, back := b.giveNow(bcg, bp, dispMoveSend)
			require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), kr)
			kr, _, send, _ := b.refs(back)
			require.Equal(t, [2]uint32{abi.KERN_SUCCESS, 1}, [2]uint32{uint32(kr), send}, "the right handed back")
			srNothing(t, p, b)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), b.sendVia(back, 1))
			b.modRefs(back, abi.MACH_PORT_RIGHT_SEND, -1)
			srExpect(t, p, 1, 0)
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"CopiedBToCThenCKilled", func(t *testing.T, p uint32, b, c *srPeer) {
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
			b.give(bcg, bp, dispMoveSend, 1, false)
			require.Len(t, c.recv(srMyG).descs, 1)
			srNothing(t, p, b)
			c.kill()
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"MoveSendAsTheDestination", func(t *testing.T, p uint32, b, c *srPeer) {
			// The message holds the moved right until it is received (ipc_object_copyout_dest).
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			require.Equal(t, uint32(abi.MACH_MSG_SUCCESS), b.do(srSendVia, nil, bp, 1, dispMoveSend)[0])
			kr, _, _, _ := b.refs(bp)
			require.Equal(t, int32(abi.KERN_INVALID_NAME), kr, "the destination's last reference moved")
			srExpect(t, p, 1, 0)
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"BExitsHoldingRights", func(t *testing.T, p uint32, b, c *srPeer) {
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend}, Desc{Name: p, Disp: dispMakeSend})
			require.Equal(t, bp[0], bp[1])
			cp := c.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			b.exit()
			srNothing(t, p, c)
			c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -1)
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 3)
		}},
		{"BKilledHoldingRights", func(t *testing.T, p uint32, b, c *srPeer) {
			b.hold(Desc{Name: p, Disp: dispMakeSend}, Desc{Name: p, Disp: dispMakeSend})
			b.kill()
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 2)
		}},
		{"InFlightToCWhenBIsKilled", func(t *testing.T, p uint32, b, c *srPeer) {
			bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
			bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
			b.give(bcg, bp, dispCopySend, 1, false)
			b.kill()
			srNothing(t, p, c)
			got := c.recv(srMyG)
			require.Len(t, got.descs, 1)
			cp := got.descs[0][0]
			require.Equal(t, [3]uint32{cp, typePortSend, 1}, got.descs[0])
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), c.sendVia(cp, 1))
			c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -1)
			srExpect(t, p, 1, 0)
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
		{"InFlightToTheOwnerWhenBExits", func(t *testing.T, p uint32, b, c *srPeer) {
			r := newTestPort(t, 0)
			bp, br := b.hold(Desc{Name: p, Disp: dispMakeSend}), b.hold(Desc{Name: r, Disp: dispMakeSend})
			b.give(br[0], bp[0], dispMoveSend, 1, false)
			b.exit()
			srNothing(t, p, c)
			m := receiveWithin(t, r)
			require.Equal(t, []Desc{{Name: p, Disp: typePortSend}}, m.Descs)
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(p, abi.MACH_PORT_RIGHT_SEND, -1))
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 1)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srLeakCheck(t)
			parent := newTestPort(t, 0)
			p := srPort(t)
			b, c := startSrPeer(t, parent), startSrPeer(t, parent)
			tc.run(t, p, b, c)
			alive := c
			if c.gone() {
				alive = b
			}
			srNothing(t, p, alive) // exactly once
			_, srights := receiveStatus(t, p)
			require.Zero(t, srights, "mps_srights after no-senders")
		})
	}
}

// User references: rights to one port coalesce under one name per process, whatever brings
// them; MOVE_SEND of the last reference frees the sender's name; MAKE_SEND raises the port's
// make-send count (COPY_SEND and MOVE_SEND do not), wherever the right goes.
//
// xnu: ipc_object.c ipc_object_copyout finds an existing entry for the port with ipc_right.c
// ipc_right_reverse (ipc_hash_lookup: a space names a port once), and ipc_right_copyout adds a
// user reference to it (the right carried in a descriptor and the header's reply right alike);
// ipc_right.c ipc_right_copyin with MACH_MSG_TYPE_MOVE_SEND of the last reference frees the
// entry (ipc_entry_dealloc); MACH_MSG_TYPE_MAKE_SEND is ipc_port_make_send_locked (ip_mscount++),
// COPY_SEND is ipc_port_copy_send (ip_srights only). mach_port.c mach_port_get_attributes
// (MACH_PORT_RECEIVE_STATUS) reports mps_mscount = ip_mscount and mps_srights = (ip_srights != 0).
func TestSendRightConformanceUserRefs(t *testing.T) {
	srWarm(t)
	srLeakCheck(t)
	parent := newTestPort(t, 0)
	p := srPort(t)
	b, c := startSrPeer(t, parent), startSrPeer(t, parent)

	three := []Desc{{Name: p, Disp: dispMakeSend}, {Name: p, Disp: dispMakeSend}, {Name: p, Disp: dispMakeSend}}
	out := c.do(srHold, three)
	cp := out[0]
	require.Equal(t, []uint32{cp, typePortSend, 3, cp, typePortSend, 3, cp, typePortSend, 3}, out,
		"three rights in one message: one name, three references")
	bp := b.hold(Desc{Name: p, Disp: dispMakeSend}, Desc{Name: p, Disp: dispMakeSend})[0] // two references
	ms, sr := receiveStatus(t, p)
	require.Equal(t, [2]uint32{5, 1}, [2]uint32{ms, sr}, "make-send count and send rights after five MAKE_SEND")

	bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
	steps := []struct {
		name    string
		disp    uint32
		asReply bool
		cRefs   uint32 // C's references after the step
		bGone   bool   // B's name is freed
	}{
		{"CopySendInADescriptor", dispCopySend, false, 4, false},
		{"CopySendAsTheReplyRight", dispCopySend, true, 5, false},
		{"MoveSendOfTheLastReference", dispMoveSend, false, 6, true},
	}
	cbg := c.hold(Desc{Name: b.g, Disp: dispCopySend})[0]
	for _, st := range steps {
		if st.disp == dispMoveSend {
			// C's right carried back to B, which names the port: B's name again, three
			// references; B drops two, so that the MOVE_SEND below moves its last.
			c.give(cbg, cp, dispCopySend, 1, false)
			got := b.recv(srMyG)
			require.Equal(t, [][3]uint32{{bp, typePortSend, 3}}, got.descs, "back at B")
			b.modRefs(bp, abi.MACH_PORT_RIGHT_SEND, -2)
		}
		b.give(bcg, bp, st.disp, 1, st.asReply)
		got := c.recv(srMyG)
		if st.asReply {
			require.Equal(t, [2]uint32{cp, typePortSend}, [2]uint32{got.reply, got.rtype}, st.name)
		} else {
			require.Equal(t, [][3]uint32{{cp, typePortSend, st.cRefs}}, got.descs, st.name)
		}
		kr, _, send, _ := c.refs(cp)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		require.Equal(t, st.cRefs, send, st.name)
		kr, _, send, _ = b.refs(bp)
		if st.bGone {
			require.Equal(t, int32(abi.KERN_INVALID_NAME), kr, st.name)
		} else {
			require.Equal(t, [2]uint32{abi.KERN_SUCCESS, 2}, [2]uint32{uint32(kr), send}, st.name+": a copy takes none of B's references")
		}
		ms, _ := receiveStatus(t, p)
		require.Equal(t, uint32(5), ms, "%s: the make-send count", st.name)
	}

	// A MAKE_SEND at the owner counts too, and its right, released, leaves C's.
	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(p, p, dispMakeSend))
	ms, _ = receiveStatus(t, p)
	require.Equal(t, uint32(6), ms)
	require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(p, abi.MACH_PORT_RIGHT_SEND, -1))
	srNothing(t, p, c)

	c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -5)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), c.sendVia(cp, 7), "the last reference still sends")
	c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -1)
	kr, _, _, _ := c.refs(cp)
	require.Equal(t, int32(abi.KERN_INVALID_NAME), kr)
	srExpect(t, p, 7, 0)
	srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, 6)
	srNothing(t, p, c)
	_, sr = receiveStatus(t, p)
	require.Zero(t, sr)
}

// The port dies (A destroys its receive right) while send rights to it are held by B and C and
// carried in messages queued at C: the holders' names become dead names with the references
// they had, B's dead-name request fires (naming B's name, and adding the reference the
// notification carries), a send through a dead name fails, and the queued messages' rights
// arrive as MACH_PORT_DEAD.
//
// xnu: ipc_port.c ipc_port_destroy (the port becomes inactive; ipc_port_dnnotify sends each
// dead-name request's notification, ipc_notify_dead_name); ipc_right.c ipc_right_check turns
// the entry into MACH_PORT_TYPE_DEAD_NAME with its user references and "adds the reference that
// the notification carries" when a request was registered; ipc_kmsg.c ipc_kmsg_copyout_object
// gives MACH_PORT_DEAD for a right whose port is no longer active (ipc_object_copyout fails with
// KERN_INVALID_CAPABILITY, and the right is destroyed); ipc_kmsg.c ipc_kmsg_copyin_header /
// ipc_right_copyin fail a send to a dead name with MACH_SEND_INVALID_DEST.
func TestSendRightConformancePortDeath(t *testing.T) {
	srWarm(t)
	srLeakCheck(t)
	parent := newTestPort(t, 0)
	p, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	destroyed := false
	t.Cleanup(func() {
		if !destroyed {
			Destruct(p, 0, 0)
		}
	})
	b, c := startSrPeer(t, parent), startSrPeer(t, parent)

	bp := b.hold(Desc{Name: p, Disp: dispMakeSend}, Desc{Name: p, Disp: dispMakeSend})[0]
	require.Equal(t, uint32(abi.KERN_SUCCESS), b.do(srDeadReq, nil, bp)[0])
	bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
	b.give(bcg, bp, dispCopySend, 1, false)
	got := c.recv(srMyG) // C's right came from B
	require.Len(t, got.descs, 1)
	cp := got.descs[0][0]
	require.Equal(t, uint32(abi.KERN_SUCCESS), c.do(srDeadReq, nil, cp)[0])
	b.give(bcg, bp, dispCopySend, 1, false) // queued at C
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: c.g, ID: srCarry,
		Descs: []Desc{{Name: p, Disp: dispMakeSend}}}, -1)) // queued at C, from the owner

	require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(p, 0, 0))
	destroyed = true

	dn := b.recv(srMyN)
	require.Equal(t, int32(abi.MACH_NOTIFY_DEAD_NAME), dn.id)
	require.Equal(t, bp, dn.dead, "the notification names B's name")
	kr, typ, send, dead := b.refs(bp)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, [3]uint32{abi.MACH_PORT_TYPE_DEAD_NAME, 0, 3}, [3]uint32{typ, send, dead},
		"B's two references as dead-name references, and the notification's")
	require.Equal(t, int32(abi.MACH_SEND_INVALID_DEST), b.sendVia(bp, 1))

	dn = c.recv(srMyN)
	require.Equal(t, int32(abi.MACH_NOTIFY_DEAD_NAME), dn.id)
	require.Equal(t, cp, dn.dead, "the notification names C's name")
	require.Equal(t, int32(abi.MACH_SEND_INVALID_DEST), c.sendVia(cp, 1))
	kr, typ, send, dead = c.refs(cp)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, [3]uint32{abi.MACH_PORT_TYPE_DEAD_NAME, 0, 2}, [3]uint32{typ, send, dead})
	for range 2 {
		got := c.recv(srMyG)
		require.Equal(t, int32(srCarry), got.id)
		require.Len(t, got.descs, 1)
		require.Equal(t, uint32(abi.MACH_PORT_DEAD), got.descs[0][0], "a right to a dead port arrives as MACH_PORT_DEAD")
	}
	b.modRefs(bp, abi.MACH_PORT_RIGHT_DEAD_NAME, -3)
	c.modRefs(cp, abi.MACH_PORT_RIGHT_DEAD_NAME, -2)
}

// A send right carried from B back to A, the port's owner, arrives as a send right under the
// name of A's receive right (whether or not A holds send rights already, and whether it comes in
// a descriptor or as the reply right), adds one user reference there, and sends to the port.
//
// xnu: ipc_object.c ipc_object_copyout (for the header's reply right and a descriptor's right
// alike) looks the port up with ipc_right.c ipc_right_reverse, which in the receiver's own space
// answers ip_receiver_name, and ipc_right_copyout of MACH_MSG_TYPE_PORT_SEND gives that entry
// MACH_PORT_TYPE_SEND and a user reference. A port has one name in its receiver's space.
func TestSendRightConformanceBackToTheOwner(t *testing.T) {
	srWarm(t)
	cases := []struct {
		name    string
		own     uint32 // send references A holds under P before
		disp    uint32
		asReply bool
	}{
		{"CopySendNoneHeld", 0, dispCopySend, false},
		{"CopySendTwoHeld", 2, dispCopySend, false},
		{"MoveSendNoneHeld", 0, dispMoveSend, false},
		{"ReplyRightNoneHeld", 0, dispCopySend, true},
		{"ReplyRightTwoHeld", 2, dispMoveSend, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srLeakCheck(t)
			parent := newTestPort(t, 0)
			p := srPort(t)
			r := newTestPort(t, 0)
			for range tc.own {
				require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(p, p, dispMakeSend))
			}
			b := startSrPeer(t, parent)
			bp, br := b.hold(Desc{Name: p, Disp: dispMakeSend})[0], b.hold(Desc{Name: r, Disp: dispMakeSend})[0]
			b.give(br, bp, tc.disp, 1, tc.asReply)
			m := receiveWithin(t, r)
			if tc.asReply {
				require.Equal(t, [2]uint32{p, typePortSend}, [2]uint32{m.Remote, m.Bits >> 8 & 0x1f})
			} else {
				require.Equal(t, []Desc{{Name: p, Disp: typePortSend}}, m.Descs)
			}
			typ, kr := Type(p)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, uint32(abi.MACH_PORT_TYPE_RECEIVE|abi.MACH_PORT_TYPE_SEND), typ)
			refs, _ := GetRefs(p, abi.MACH_PORT_RIGHT_SEND)
			require.Equal(t, tc.own+1, refs)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: p, ID: 9}, -1))
			srExpect(t, p, 9, 0)
			if tc.disp == dispCopySend {
				b.modRefs(bp, abi.MACH_PORT_RIGHT_SEND, -1)
			}
			srNothing(t, p, b)
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(p, abi.MACH_PORT_RIGHT_SEND, -int32(refs)))
			srExpect(t, p, abi.MACH_NOTIFY_NO_SENDERS, tc.own+1)
		})
	}
}

// The port moves while B holds a send right to it: A sends its receive right in a message to
// another of its ports and receives it again (a new name). B's right keeps sending to the port
// (while the receive right is in transit too), as does a right that waited in a message queued
// at C across the move; the rights still count as senders, the no-senders request moves with
// the port, and no-senders comes once B's and C's rights are gone, with the make-send count the
// move reset to 0. (The emulation cannot move a receive right to another process, mach/doc.go;
// this is the move it has.)
//
// xnu: a send right names the port object, not its receiver; a port in transit stays active and
// a send to it is queued on it (ipc_mqueue.c ipc_mqueue_send; ipc_kmsg.c ipc_kmsg_copyin_body
// moves the receive right with ipc_right.c ipc_right_copyin, and ipc_port_check_circularity
// links the port to its destination); ip_srights and ip_nsrequest belong to the port and move with it, but ipc_port.c
// ipc_port_clear_receiver (called when the receive right is copied in) sets ip_mscount and the
// sequence number to 0, so mps_mscount reads 0 after the move and no-senders carries 0.
func TestSendRightConformancePortMovesWhileHeld(t *testing.T) {
	srWarm(t)
	srLeakCheck(t)
	parent := newTestPort(t, 0)
	k := newTestPort(t, 0)
	notify := newTestPort(t, 0)
	p, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	_, kr = RequestNotification(p, abi.MACH_NOTIFY_NO_SENDERS, 1, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	b, c := startSrPeer(t, parent), startSrPeer(t, parent)
	bp := b.hold(Desc{Name: p, Disp: dispMakeSend})[0]
	bcg := b.hold(Desc{Name: c.g, Disp: dispCopySend})[0]
	b.give(bcg, bp, dispCopySend, 1, false) // queued at C across the move

	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: k, ID: 1,
		Descs: []Desc{{Name: p, Disp: dispMoveReceive}}}, -1))
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), b.sendVia(bp, 2), "a send to a port in transit")
	m := receiveWithin(t, k)
	require.Len(t, m.Descs, 1)
	require.Equal(t, uint8(typePortReceive), m.Descs[0].Disp)
	moved := m.Descs[0].Name
	t.Cleanup(func() { Destruct(moved, 0, 0) })
	require.Equal(t, int32(2), receiveWithin(t, moved).ID)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), b.sendVia(bp, 3))
	require.Equal(t, int32(3), receiveWithin(t, moved).ID)
	ms, sr := receiveStatus(t, moved)
	require.Equal(t, [2]uint32{0, 1}, [2]uint32{ms, sr}, "the move cleared the make-send count; B's right counts")

	got := c.recv(srMyG) // the right that waited at C across the move
	require.Len(t, got.descs, 1)
	cp := got.descs[0][0]
	require.Equal(t, [3]uint32{cp, typePortSend, 1}, got.descs[0])
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), c.sendVia(cp, 4))
	require.Equal(t, int32(4), receiveWithin(t, moved).ID, "C's right sends to the port's new home")
	srNothing(t, notify, b)
	b.modRefs(bp, abi.MACH_PORT_RIGHT_SEND, -1)
	srNothing(t, notify, c)
	c.modRefs(cp, abi.MACH_PORT_RIGHT_SEND, -1)
	srExpect(t, notify, abi.MACH_NOTIFY_NO_SENDERS, 0)
	srNothing(t, notify, b)
}
