//go:build linux

// A reviewer's tests of the copy-in that takes moved rights out of the space, each written to
// fail on the code of its day against xnu's behaviour. Each comment says what the emulation then
// did and how it could be fixed; all are fixed (a32f383..8cd7018), and the tests keep the
// behaviour.

package emu

import (
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// failMemfds makes every memfd the emulation creates fail (a send carrying memory then fails
// with MACH_SEND_NO_BUFFER, after its rights were copied in) until the test ends.
func failMemfds(t *testing.T) {
	t.Helper()
	memfdCreate = func(string, int) (int, error) { return -1, unix.EMFILE }
	t.Cleanup(func() { memfdCreate = unix.MemfdCreate })
}

// A send that fails with MACH_SEND_NO_BUFFER leaves "everything as it was before the send"
// (mach/doc.go, Linux differences; the emulation's own contract for its own shortage, which
// has no xnu counterpart). On xnu, ipc_right_copyin (osfmk/ipc/ipc_right.c), for
// MOVE_SEND_ONCE and a last MOVE_SEND, does not fire the name's dead-name request itself: it
// cancels it into *sorightp, and the caller sends MACH_NOTIFY_PORT_DELETED only once the
// copy-in is done (ipc_kmsg_copyin_header: ipc_notify_port_deleted on the sorights). The
// emulation's copy-in frees the emptied name at once (moveSendOnce / useSend: sp.dropIfEmpty),
// which sends PORT_DELETED and drops the request; the rollback (giveBack) puts the entry back
// without it. So after a send that "changed nothing" the notify port has a PORT_DELETED for a
// name that still holds its right, and the right's dead-name request is gone: its port's death
// will never be reported. (A regression of dbb9ef3: this test passes at 670eb73.)
// Fix: when the copy-in empties a name, keep the entry's dead-name request aside (in the
// takenRight) instead of firing it in dropIfEmpty; commitTaken (and the timed-out hand-back,
// which on xnu follows a completed copy-in) fires PORT_DELETED, undoTaken puts the request
// back on the entry it gives back.
func TestCopyinFailedSendKeepsDeadNameRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		disp uint8
		make uint8
	}{
		{"send-once", dispMoveSendOnce, dispMakeSendOnce},
		{"last send", dispMoveSend, dispMakeSend},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := newTestPort(t, 0)
			target := newTestPort(t, 0)
			notify := newTestPort(t, 0)
			// A right of its own name: a send-once right always has one; a send right to a
			// port whose receive right is in another name gets one through a message.
			var right uint32
			if tc.make == dispMakeSendOnce {
				so, _, kr := ExtractRight(target, dispMakeSendOnce)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				right = so
			} else {
				// The receive right waits in carrier's queue, so the send right is all the
				// name holds.
				port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				carrier := newTestPort(t, 0)
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: carrier, ID: 9,
					Descs: []Desc{{Name: port, Disp: dispMoveReceive}}}, 0))
				t.Cleanup(func() {
					if m, kr := tryReceiveNow(carrier); kr == abi.MACH_MSG_SUCCESS {
						Destruct(m.Descs[0].Name, -1, 0)
					}
				})
				right = port
			}
			t.Cleanup(func() { Deallocate(right) })
			_, kr := RequestNotification(right, abi.MACH_NOTIFY_DEAD_NAME, 1, notify, dispMakeSendOnce)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)

			failMemfds(t)
			data := make([]byte, 100)
			m := &Msg{Bits: dispCopySend, Remote: dest, ID: 1, Descs: []Desc{{Name: right, Disp: tc.disp},
				{Memory: true, Data: data, Size: uint32(len(data)), Copy: abi.MACH_MSG_VIRTUAL_COPY}}}
			require.Equal(t, int32(abi.MACH_SEND_NO_BUFFER), Send(m, 0))
			memfdCreate = unix.MemfdCreate

			assert.Empty(t, drainIDs(notify), "nothing happened to the name: no PORT_DELETED")
			typ, kr := Type(right)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			assert.NotZero(t, typ&abi.MACH_PORT_TYPE_DNREQUEST, "the right keeps its dead-name request")
			assert.Empty(t, drainIDs(dest))
		})
	}
}

// A port-destroyed notification is a message too: xnu's ipc_port_destroy, for a port with a
// port-destroyed request, checks the receive right it would send to the request's port for a
// cycle (osfmk/ipc/ipc_port.c, ipc_port_destroy: ipc_port_check_circularity(port, pdrequest))
// and, if the notify port's own receive right travels in the dying port's queue, releases the
// request and destroys the port instead, which destroys the message queued in it and the receive
// right that message carries: both ports die, and their send rights become dead names. The
// emulation's destroyReceive sends MACH_NOTIFY_PORT_DESTROYED without the check (it only sets
// p.inTransit), so a's receive right waits in b's queue and b's in a's: two ports no name can
// ever reach again, with their queues and fds, until the process exits.
// Fix: in destroyReceive, before parking the receive right, test circular(p, notify); if it is,
// drop the request (its send-once right: the notify port is unreachable anyway) and kill p as
// if it had none. (Also at 670eb73; 8e55783 added the check for messages only.)
func TestCopyinCircularPortDestroyed(t *testing.T) {
	a, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	b, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() {
		sp.mu.Lock()
		for _, n := range []uint32{a, b} {
			if e := sp.entries[n]; e != nil && e.send != nil && e.send.local != nil && !e.send.local.dead {
				e.send.local.kill() // breaks the cycle the emulation left
			}
		}
		sp.mu.Unlock()
		for _, n := range []uint32{a, b} {
			ModRefs(n, abi.MACH_PORT_RIGHT_DEAD_NAME, -1)
		}
	})
	_, kr = RequestNotification(a, abi.MACH_NOTIFY_PORT_DESTROYED, 0, b, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: a, ID: 1,
		Descs: []Desc{{Name: b, Disp: dispMoveReceive}}}, 0), "b's receive right waits in a's queue")
	require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(a, abi.MACH_PORT_RIGHT_RECEIVE, -1))
	for _, n := range []uint32{a, b} {
		typ, kr := Type(n)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		assert.Equal(t, uint32(abi.MACH_PORT_TYPE_DEAD_NAME), typ, "the cycle destroyed both ports")
	}
}

// A send that fails with MACH_SEND_NO_BUFFER "leaves everything as it was before the send, and
// makes nothing" (mach/doc.go, Linux differences). A MAKE_SEND in it is counted and then
// uncounted (countMakeSend, undoTaken: the make-send count is as before), but the send right it
// made for the message (right: p.newLocalSend, held by the transfer) is released in abort like
// any other, and its release runs checkNoSenders: a no-senders request armed on a port that had
// no send right before the send (xnu's ipc_port_nsrequest arms one with sync > mscount and
// waits for the last send right to go, ipc_notify_no_senders) fires, with the port's make-send
// count, though no send right was ever observable. On macOS the request would stay armed, as
// nothing happened: the receiver is told "no more senders" once, spuriously, and its request is
// gone for the send right that later really comes and goes.
// Fix: in the failure paths (fail, and Send's rollback for anything but MACH_SEND_TIMED_OUT,
// whose handBack makes the right again first), release the send rights the copy-in made without
// checking no-senders (as discardSendOnce retires a made send-once right silently), e.g. a
// transfer flag that makes sendChan.put skip sp.checkNoSenders for them. (Also at 670eb73.)
func TestCopyinNoBufferMakeSendFiresNoSenders(t *testing.T) {
	dest := newTestPort(t, 0)
	notify := newTestPort(t, 0)
	port, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1) })
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 1, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Empty(t, drainIDs(notify), "armed: no send right was ever made")

	failMemfds(t)
	data := make([]byte, 100)
	require.Equal(t, int32(abi.MACH_SEND_NO_BUFFER), Send(&Msg{Bits: dispCopySend, Remote: dest, ID: 1,
		Descs: []Desc{{Name: port, Disp: dispMakeSend}, {Memory: true, Data: data, Size: uint32(len(data)),
			Copy: abi.MACH_MSG_VIRTUAL_COPY}}}, 0))
	memfdCreate = unix.MemfdCreate

	assert.Empty(t, drainIDs(notify), "the failed send made no send right: no no-senders")
	assert.Empty(t, drainIDs(dest))
}

// Destination and reply named by one name: xnu copies both in at once, by the combination of
// the two dispositions (osfmk/ipc/ipc_kmsg.c, ipc_kmsg_copyin_header, "Destination and reply
// ports are the same!"): MOVE_SEND with COPY_SEND does one move-send and copies the send right
// it got (so it works with a single user reference); MOVE_SEND with MOVE_SEND takes two
// references at once (ipc_right_copyin_two) and with fewer fails as a destination error;
// MOVE_SEND_ONCE with anything is a destination error ("a successful move-sonce will destroy a
// live entry. Therefore the other copyin, whatever it is, would fail ... so report a
// destination error"). The emulation copies the destination in first and takes the moved right
// out of the entry (copyinDest: useSend / moveSendOnce), then copies the reply in from what is
// left (right): a MOVE_SEND of the last reference with a COPY_SEND reply fails with
// MACH_SEND_INVALID_REPLY where macOS sends, and the two error cases report the reply instead
// of the destination. (The same at 670eb73, before copy-in took moved rights out.)
// Fix: in copyin, when m.Local == m.Remote, handle the pair as ipc_kmsg_copyin_header does:
// MOVE_SEND_ONCE on either side → MACH_SEND_INVALID_DEST (after checking the reply's right);
// MOVE_SEND + COPY_SEND (either order) → one move, the reply a copy of the same channel (an
// extra hold); MOVE_SEND + MOVE_SEND → MACH_SEND_INVALID_DEST unless the entry has two
// references.
func TestCopyinSameNameDestAndReply(t *testing.T) {
	for _, tc := range []struct {
		name       string
		once       bool // the name holds a send-once right (else receive and one send reference)
		dest, repl uint8
		want       int32
	}{
		{"move-send dest, copy-send reply, one ref", false, dispMoveSend, dispCopySend, abi.MACH_MSG_SUCCESS},
		{"move-send both, one ref", false, dispMoveSend, dispMoveSend, abi.MACH_SEND_INVALID_DEST},
		{"move-send-once both", true, dispMoveSendOnce, dispMoveSendOnce, abi.MACH_SEND_INVALID_DEST},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := newTestPort(t, 0) // receive right and one send reference under one name
			name := port
			if tc.once {
				so, _, kr := ExtractRight(port, dispMakeSendOnce)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				t.Cleanup(func() { Deallocate(so) })
				name = so
			}
			refs, kr := GetRefs(port, abi.MACH_PORT_RIGHT_SEND)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, uint32(1), refs)
			got := Send(&Msg{Bits: uint32(tc.dest) | uint32(tc.repl)<<8, Remote: name, Local: name, ID: 1}, 0)
			assert.Equal(t, tc.want, got)
			if got == abi.MACH_MSG_SUCCESS {
				m, kr := tryReceiveNow(port)
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
				assert.Equal(t, port, m.Remote, "the reply right is a send right to the port, under its name")
			}
		})
	}
}

// A reply disposition that is not a send disposition is a malformed header: xnu's
// ipc_kmsg_copyin_header refuses it with MACH_SEND_INVALID_HEADER before it looks at any name
// ("!MACH_MSG_TYPE_PORT_ANY_SEND(reply_type) → MACH_SEND_INVALID_HEADER"), so nothing is
// copied in. The emulation copies the reply in as any right (right) and refuses it only after:
// MOVE_RECEIVE with MACH_SEND_INVALID_REPLY, after moveReceive took the receive right out of its
// name (waking its blocked receivers, leaving its port sets) and the rollback gave it back;
// an unknown disposition with MACH_SEND_INVALID_TYPE. (Also at 670eb73.)
// Fix: in Send, next to the voucher check, return MACH_SEND_INVALID_HEADER when localDisp is
// neither 0 nor one of MOVE_SEND, COPY_SEND, MAKE_SEND, MOVE_SEND_ONCE, MAKE_SEND_ONCE (and
// when m.Local is not MACH_PORT_NULL with localDisp 0, as xnu's same check does).
func TestCopyinReplyNotSendIsHeaderError(t *testing.T) {
	for _, disp := range []uint8{dispMoveReceive, 25, 0} { // 0: a reply name without a disposition
		dest := newTestPort(t, 0)
		reply := newTestPort(t, 0)
		assert.Equal(t, int32(abi.MACH_SEND_INVALID_HEADER),
			Send(&Msg{Bits: dispCopySend | uint32(disp)<<8, Remote: dest, Local: reply, ID: 1}, 0), "disposition %d", disp)
		assert.Empty(t, drainIDs(dest))
	}
}
