//go:build linux

package emu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Cross-process cases for send rights carried to a process that already names their port: the
// case issue 18 wants to carry as a token without a descriptor. They run this test binary again
// as a peer (init below), which gets a send right to the test's port on fd 3 (PassSendRight) and
// answers with send rights to two ports of its own.

// xprocRoleEnv names the peer's role in a re-executed test binary.
const xprocRoleEnv = "MACHPORT_EMU_XPROC_ROLE"

// Message ids between the test and its peer.
const (
	xHello   = 3000 + iota // peer → test: MAKE_SEND of its ports q and g
	xGive                  // test → q: a send right in a port descriptor
	xGot                   // peer → test: the right of an xGive is named
	xGo                    // test → g: drop the right you hold, then take the next xGive
	xVia                   // peer → the carried port: a message through the right it was given
	xDone                  // peer → test: done; the body says what went wrong, if anything
	xRequest               // test → q: a request (bench), its reply right in Local or held
	xQuit                  // test → q: exit
)

func init() {
	role := os.Getenv(xprocRoleEnv)
	if role == "" {
		return
	}
	run := map[string]func(parent, q, g uint32) error{
		"dropwhilecarried": peerDropWhileCarried,
		"endunreceived":    peerEndUnreceived,
		"heldreply":        peerHeldReply,
		"sendlane":         peerSendLane,
	}[role]
	err := fmt.Errorf("unknown role %q", role)
	if run != nil {
		err = runXprocPeer(run)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// runXprocPeer takes the test's send right from fd 3, makes the ports q and g, says hello with
// send rights to them, and runs the role.
func runXprocPeer(run func(parent, q, g uint32) error) error {
	parent, kr := AcceptSendRight(3, 10*time.Second)
	if kr != abi.KERN_SUCCESS {
		return fmt.Errorf("accept: %#x", kr)
	}
	unix.Close(3)
	q, kr := Construct(0, 0, 0)
	if kr != abi.KERN_SUCCESS {
		return fmt.Errorf("construct: %#x", kr)
	}
	g, kr := Construct(0, 0, 0)
	if kr != abi.KERN_SUCCESS {
		return fmt.Errorf("construct: %#x", kr)
	}
	if kr := Send(&Msg{Bits: dispCopySend, Remote: parent, ID: xHello,
		Descs: []Desc{{Name: q, Disp: dispMakeSend}, {Name: g, Disp: dispMakeSend}}}, -1); kr != abi.MACH_MSG_SUCCESS {
		return fmt.Errorf("hello: %#x", kr)
	}
	return run(parent, q, g)
}

// xprocReceive receives one message on name; the deadline only ends a peer that would
// otherwise wait forever for a message that was lost.
func xprocReceive(name uint32, out *Msg) error {
	size := func(ports, mems, body int) int { return 0 }
	if _, kr := Receive(context.Background(), name, 1<<20, size, false, 20*time.Second, out); kr != abi.MACH_MSG_SUCCESS {
		return fmt.Errorf("receive: %#x", kr)
	}
	return nil
}

// peerDropWhileCarried holds the send right of a first xGive, drops it once the test says go
// (by then a second xGive, carrying a send right to the same port, is in flight), then takes the
// second, sends through it and releases it.
func peerDropWhileCarried(parent, q, g uint32) error {
	done := func(problem string) error {
		err := sendErr(Send(&Msg{Bits: dispCopySend, Remote: parent, ID: xDone, Body: []byte(problem)}, -1))
		if problem != "" {
			err = errors.Join(errors.New(problem), err)
		}
		return err
	}
	var m Msg
	if err := xprocReceive(q, &m); err != nil {
		return err
	}
	if m.ID != xGive || len(m.Descs) != 1 || m.Descs[0].Disp != typePortSend {
		return done(fmt.Sprintf("first give: id %d, %d descriptors", m.ID, len(m.Descs)))
	}
	first := m.Descs[0].Name
	if kr := Send(&Msg{Bits: dispCopySend, Remote: parent, ID: xGot}, -1); kr != abi.MACH_MSG_SUCCESS {
		return sendErr(kr)
	}
	if err := xprocReceive(g, &m); err != nil || m.ID != xGo {
		return done(fmt.Sprintf("go: %v, id %d", err, m.ID))
	}
	if kr := Deallocate(first); kr != abi.KERN_SUCCESS {
		return done(fmt.Sprintf("deallocate the first right: %#x", kr))
	}
	if err := xprocReceive(q, &m); err != nil {
		return done("the second give never came: " + err.Error())
	}
	if m.ID != xGive || len(m.Descs) != 1 || m.Descs[0].Disp != typePortSend {
		return done(fmt.Sprintf("second give: id %d, %d descriptors", m.ID, len(m.Descs)))
	}
	second := m.Descs[0].Name
	if refs, kr := GetRefs(second, abi.MACH_PORT_RIGHT_SEND); kr != abi.KERN_SUCCESS || refs != 1 {
		return done(fmt.Sprintf("the second right: %d send references (%#x)", refs, kr))
	}
	if kr := Send(&Msg{Bits: dispCopySend, Remote: second, ID: xVia}, -1); kr != abi.MACH_MSG_SUCCESS {
		return done(fmt.Sprintf("send through the second right: %#x", kr))
	}
	if kr := Deallocate(second); kr != abi.KERN_SUCCESS {
		return done(fmt.Sprintf("deallocate the second right: %#x", kr))
	}
	return done("")
}

// peerEndUnreceived holds the send right of a first xGive and, once the test says go (by then
// a second xGive is queued on q), ends without receiving the second: with the go's body "exit"
// the process exits holding everything; with "destroy" it releases the first right, destroys q
// (the queued message dies with its right, as xnu's ipc_port_destroy destroys queued
// messages), says done, and waits to be stopped.
func peerEndUnreceived(parent, q, g uint32) error {
	var m Msg
	if err := xprocReceive(q, &m); err != nil {
		return err
	}
	if m.ID != xGive || len(m.Descs) != 1 || m.Descs[0].Disp != typePortSend {
		return fmt.Errorf("first give: id %d, %d descriptors", m.ID, len(m.Descs))
	}
	first := m.Descs[0].Name
	if err := sendErr(Send(&Msg{Bits: dispCopySend, Remote: parent, ID: xGot}, -1)); err != nil {
		return err
	}
	if err := xprocReceive(g, &m); err != nil || m.ID != xGo {
		return fmt.Errorf("go: %v, id %d", err, m.ID)
	}
	if string(m.Body) == "exit" {
		os.Exit(0)
	}
	if kr := Deallocate(first); kr != abi.KERN_SUCCESS {
		return fmt.Errorf("deallocate the first right: %#x", kr)
	}
	if kr := Destruct(q, 0, 0); kr != abi.KERN_SUCCESS {
		return fmt.Errorf("destroy q: %#x", kr)
	}
	if err := sendErr(Send(&Msg{Bits: dispCopySend, Remote: parent, ID: xDone}, -1)); err != nil {
		return err
	}
	size := func(int, int, int) int { return 0 }
	Receive(context.Background(), g, 1<<20, size, false, -1, &m) // until the test ends
	return nil
}

func sendErr(kr int32) error {
	if kr == abi.MACH_MSG_SUCCESS {
		return nil
	}
	return fmt.Errorf("send: %#x", kr)
}

// peerHeldReply serves xRequest on q: it keeps the send right of the first one's descriptor (the
// requester's reply port) for good; a request whose Local carries a send right is answered by
// moving that right (the reference the request brought), any other through the right it keeps.
func peerHeldReply(parent, q, g uint32) error {
	var in Msg
	if err := xprocReceive(q, &in); err != nil {
		return err
	}
	if len(in.Descs) != 1 {
		return fmt.Errorf("setup: %d descriptors", len(in.Descs))
	}
	held := in.Descs[0].Name
	body := make([]byte, 64)
	for {
		in = Msg{Body: in.Body[:0], Descs: in.Descs[:0]}
		if _, kr := Receive(context.Background(), q, 1<<20, func(int, int, int) int { return 0 }, false, -1, &in); kr != abi.MACH_MSG_SUCCESS {
			return fmt.Errorf("receive: %#x", kr)
		}
		if in.ID == xQuit {
			return nil
		}
		out := Msg{Bits: dispCopySend, Remote: held, ID: in.ID, Body: body}
		if in.Remote != abi.MACH_PORT_NULL {
			if in.Remote != held {
				return fmt.Errorf("a carried right named %#x, not the held %#x", in.Remote, held)
			}
			out.Bits = dispMoveSend
		}
		if kr := Send(&out, -1); kr != abi.MACH_MSG_SUCCESS {
			return sendErr(kr)
		}
	}
}

// heldReplyPeer starts a "heldreply" peer, gives it a send right to a reply port of the test,
// and returns the peer's port q and the reply port; the peer quits when the test ends.
func heldReplyPeer(t *testing.T) (q, reply uint32) {
	t.Helper()
	parent := newTestPort(t, 0)
	reply = newTestPort(t, 0)
	q, _, _ = startXprocPeer(t, "heldreply", parent)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: q, ID: xGive,
		Descs: []Desc{{Name: reply, Disp: dispMakeSend}}}, -1))
	t.Cleanup(func() { Send(&Msg{Bits: dispCopySend, Remote: q, ID: xQuit}, -1) })
	return q, reply
}

// startXprocPeer runs the test binary again as a peer in role and returns send rights to its
// ports q and g, and its pid. parent is the test's port the peer talks to.
func startXprocPeer(t testing.TB, role string, parent uint32) (q, g uint32, pid int) {
	t.Helper()
	cmd, _, q, g := startRolePeer(t, xprocRoleEnv+"="+role, parent)
	return q, g, cmd.Process.Pid
}

// startRolePeer runs the test binary again with env ("NAME=value") set, the hand-off socket as
// its fd 3 and extra after it (closed here once the child has them), passes it a send right to
// parent (runXprocPeer's side), and returns its command, a channel closed once it has exited
// (and been waited for), and the send rights to its ports q and g that its hello carries. It is
// killed at cleanup.
func startRolePeer(t testing.TB, env string, parent uint32, extra ...*os.File) (cmd *exec.Cmd, exited <-chan struct{}, q, g uint32) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	child := os.NewFile(uintptr(fds[1]), "handoff")
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	cmd.ExtraFiles = append([]*os.File{child}, extra...)
	cmd.Stderr = os.Stderr
	err = cmd.Start()
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	if err != nil {
		unix.Close(fds[0])
	}
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	require.Equal(t, int32(abi.KERN_SUCCESS), PassSendRight(fds[0], parent))
	unix.Close(fds[0])
	var m Msg
	require.NoError(t, xprocReceive(parent, &m))
	require.Equal(t, int32(xHello), m.ID)
	require.Len(t, m.Descs, 2)
	q, g = m.Descs[0].Name, m.Descs[1].Name
	t.Cleanup(func() { Deallocate(q); Deallocate(g) })
	return cmd, done, q, g
}

// A send right carried to a process that names its port, while that process drops the right it
// holds: in xnu the right in flight keeps the port's senders (ipc_kmsg_copyin holds a send
// reference, ip_srights, until copyout), so the receiver gets a live right, can send through it,
// and no-senders comes only once that right and the sender's own are gone, with the make-send
// count of every right made. A send right carried as a token that leans on the receiver's own
// channel (issue 18's "send rights as tokens", built naively) fails here: the receiver's channel
// is gone when the token arrives, so the right is lost, and the port has no senders while it is
// in flight. Each case carries the right with another disposition: made from the receive right,
// copied from, or moved out of, a send right of the port's own process.
func TestSendRightCarriedWhileReceiverDropsItsOwn(t *testing.T) {
	cases := []struct {
		name string
		disp uint8
		// own is how many send rights the test's process names for the port at the start
		// (made with MAKE_SEND, so they count in the make-send count).
		own      uint32
		mscount  uint32
		ownAfter uint32 // the user references it still holds after the two gives
	}{
		{"MakeSend", dispMakeSend, 0, 2, 0},
		{"CopySend", dispCopySend, 1, 1, 1},
		{"MoveSend", dispMoveSend, 2, 2, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := newTestPort(t, 0)
			// The no-senders notification goes to the carried port itself: it is queued behind
			// whatever came through the rights, so the order of the two is the order of the
			// events. Its sync of 1 arms it (with a make-send count of 0 it would fire at once).
			carried, kr := Construct(0, 0, 0)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			t.Cleanup(func() { Destruct(carried, 0, 0) })
			for range tc.own {
				require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(carried, carried, dispMakeSend))
			}
			_, kr = RequestNotification(carried, abi.MACH_NOTIFY_NO_SENDERS, 1, carried, dispMakeSendOnce)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)

			q, g, _ := startXprocPeer(t, "dropwhilecarried", parent)
			give := func() {
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: q, ID: xGive,
					Descs: []Desc{{Name: carried, Disp: tc.disp}}}, -1))
			}
			give()
			var m Msg
			require.NoError(t, xprocReceive(parent, &m))
			require.Equal(t, int32(xGot), m.ID, "peer: %s", m.Body)
			give() // in flight while the peer drops the first right
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: g, ID: xGo}, -1))

			require.NoError(t, xprocReceive(parent, &m))
			require.Equal(t, int32(xDone), m.ID)
			require.Empty(t, string(m.Body), "the peer's report")
			refs, kr := GetRefs(carried, abi.MACH_PORT_RIGHT_SEND)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, tc.ownAfter, refs)
			if refs > 0 {
				require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(carried, abi.MACH_PORT_RIGHT_SEND, -int32(refs)))
			}
			require.NoError(t, xprocReceive(carried, &m))
			require.Equal(t, int32(xVia), m.ID, "the message through the carried right comes before no-senders")
			require.NoError(t, xprocReceive(carried, &m))
			require.Equal(t, int32(abi.MACH_NOTIFY_NO_SENDERS), m.ID)
			require.Equal(t, tc.mscount, binary.LittleEndian.Uint32(m.Body[8:]), "the make-send count")
		})
	}
}

// A send right carried to a process that names its port, which ends before receiving it: the
// process exits, or destroys the port the message waits on. In xnu the right dies with the
// message (ipc_kmsg_destroy, at the task's teardown or the port's destruction), and no-senders
// comes then, though nobody receives on the carried port; a token path must release what the
// right counted as the emulation's descriptors in flight do. The notification goes to another
// port, and nothing is ever received on the carried port.
func TestSendRightCarriedToAHolderThatEndsFirst(t *testing.T) {
	for _, end := range []string{"exit", "destroy"} {
		t.Run(end, func(t *testing.T) {
			parent := newTestPort(t, 0)
			carried, notify := armedPort(t)

			q, g, _ := startXprocPeer(t, "endunreceived", parent)
			give := func() {
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: q, ID: xGive,
					Descs: []Desc{{Name: carried, Disp: dispMakeSend}}}, -1))
			}
			give()
			var m Msg
			require.NoError(t, xprocReceive(parent, &m))
			require.Equal(t, int32(xGot), m.ID)
			give() // queued on q, never received
			_, kr := tryReceiveNow(notify)
			require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "no-senders while the peer holds a right")
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: g, ID: xGo, Body: []byte(end)}, -1))
			if end == "destroy" {
				require.NoError(t, xprocReceive(parent, &m))
				require.Equal(t, int32(xDone), m.ID)
			}
			require.NoError(t, xprocReceive(notify, &m))
			require.Equal(t, int32(abi.MACH_NOTIFY_NO_SENDERS), m.ID)
			require.Equal(t, uint32(2), binary.LittleEndian.Uint32(m.Body[8:]), "the make-send count")
		})
	}
}

// BenchmarkHeldReplyRight is request/reply with a peer process that keeps a send right to the
// requester's reply port: "carried" sends each request with MAKE_SEND of that port as its reply
// right (the peer already names the port, so today it receives the channel's write end and
// counter with SCM_RIGHTS and closes both; issue 18's send-right token would carry it without
// them), and answers by moving it; "held" sends requests without a right, answered through the
// right the peer keeps. The difference is what carrying the right costs, the most a token path
// could save.
func BenchmarkHeldReplyRight(b *testing.B) {
	for _, mode := range []string{"carried", "held"} {
		b.Run(mode, func(b *testing.B) {
			parent := newBenchPort(b)
			reply := newBenchPort(b)
			q, _, pid := startXprocPeer(b, "heldreply", parent)
			require.Equal(b, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: q, ID: xGive,
				Descs: []Desc{{Name: reply, Disp: dispMakeSend}}}, -1))
			body := make([]byte, 64)
			out := Msg{Bits: dispCopySend, Remote: q, ID: xRequest, Body: body}
			if mode == "carried" {
				out.Bits |= dispMakeSend << 8
				out.Local = reply
			}
			var in Msg
			size := func(int, int, int) int { return 0 }
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuBoth(b, pid)
			for range b.N {
				o := out
				if kr := Send(&o, -1); kr != abi.MACH_MSG_SUCCESS {
					b.Fatalf("send: %#x", kr)
				}
				in.Body = in.Body[:0]
				if _, kr := Receive(context.Background(), reply, 1<<20, size, false, -1, &in); kr != abi.MACH_MSG_SUCCESS {
					b.Fatalf("receive: %#x", kr)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(cpuBoth(b, pid)-cpu0)/float64(b.N), "cpu-ns/op")
			require.Equal(b, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: q, ID: xQuit}, -1))
		})
	}
}

// cpuBoth is the CPU time this process and the child pid have used: on a machine shared with
// other work, CPU per round trip varies less than the time it takes. (The child's is read from
// its process CPU clock, MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) of the kernel's
// include/linux/posix-timers.h, as mach's transport benchmarks do.)
func cpuBoth(b *testing.B, pid int) time.Duration {
	var ru unix.Rusage
	require.NoError(b, unix.Getrusage(unix.RUSAGE_SELF, &ru))
	var ts unix.Timespec
	require.NoError(b, unix.ClockGettime(int32(^pid<<3|2), &ts))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano() + ts.Nano())
}

// newBenchPort is newTestPort for a benchmark.
func newBenchPort(b *testing.B) uint32 {
	b.Helper()
	name, kr := Construct(0, 0, 0)
	require.Equal(b, int32(abi.KERN_SUCCESS), kr)
	require.Equal(b, int32(abi.KERN_SUCCESS), InsertRight(name, name, dispMakeSend))
	b.Cleanup(func() { Destruct(name, -1, 0) })
	return name
}
