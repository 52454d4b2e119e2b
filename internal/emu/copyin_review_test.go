//go:build linux

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
// will never be reported.
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
// if it had none.
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
// transfer flag that makes sendChan.put skip sp.checkNoSenders for them.
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
