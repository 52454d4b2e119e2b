//go:build linux

// A reviewer's tests of the send's unlocked window and the copy-in, each written to fail on the
// code of its day against xnu's behaviour. Each comment says what the emulation then did and how
// it could be fixed; all are fixed (dbb9ef3..8f8b5e0), and the tests keep the behaviour.

package emu

import (
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Races in a send's unlocked window (msg.go, Send: copy-in under sp.mu, delivery without it,
// commit under it again). xnu's copy-in takes every moved right out of the sender's space at
// once, under the space lock (osfmk/ipc/ipc_kmsg.c ipc_kmsg_copyin_header and
// ipc_kmsg_copyin_body, osfmk/ipc/ipc_right.c ipc_right_copyin): from then on the right is the
// message's, and the name no longer denotes it. The emulation takes moved rights only at commit
// (tx.moves), so during the window the name still holds them, and anything that looks at the
// name sees and uses a right that is already on its way. The tests below run that something in
// the window through sendInFlightHook, once, before the message goes.
//
// The fix they share: take moved rights out of their entries at copy-in (MOVE_SEND: the
// references, and the entry if nothing else is left; MOVE_SEND_ONCE: e.sonce; MOVE_RECEIVE:
// e.recv, port-set membership and the byPort name), keeping the transfer's hold on the channel
// so that no-senders and send-once notifications do not fire early, and give them back in
// tx.undos (under a fresh name if the old one was reused meanwhile, as xnu's
// ipc_kmsg_copyout_pseudo would name them). tx.moves then has nothing left to take. The
// channel-setup loop already rolls a pass back and copies in again under the lock, which stays
// correct. dropMovedDead becomes unnecessary (the moved right can no longer turn into a dead
// name under its old name).

// inWindow runs f once, in the first send's unlocked window before its message goes (a send
// that f makes itself runs its window without f). It returns how many times f ran.
func inWindow(t *testing.T, f func()) *int {
	t.Helper()
	fired := new(int)
	sendInFlightHook = func(delivered bool) {
		if delivered || *fired > 0 {
			return
		}
		*fired++
		f()
	}
	t.Cleanup(func() { sendInFlightHook = nil })
	return fired
}

// drainIDs receives every message queued on name now and returns their ids.
func drainIDs(name uint32) []int32 {
	var ids []int32
	for {
		m, kr := tryReceiveNow(name)
		if kr != abi.MACH_MSG_SUCCESS {
			return ids
		}
		ids = append(ids, m.ID)
	}
}

// Two threads send on one send-once right at the same time: xnu's copy-in of MOVE_SEND_ONCE
// takes the right from the entry and frees the name (ipc_right_copyin, case
// MACH_MSG_TYPE_MOVE_SEND_ONCE: ipc_entry_dealloc), so the second send finds no right and fails
// with MACH_SEND_INVALID_DEST (ipc_kmsg_copyin_header), and exactly one message arrives. The
// emulation lets the second copy-in take the same e.sonce while the first is in flight (the
// per-transfer taken() check does not see another transfer), so both messages go out on the one
// send-once channel: a duplicated message, a send-once right used twice.
// Fix: take e.sonce out of the entry in moveSendOnce at copy-in (see the file comment).
func TestWindowSendOnceSentTwice(t *testing.T) {
	queue := newTestPort(t, 0)
	so, _, kr := ExtractRight(queue, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	var second int32
	fired := inWindow(t, func() {
		second = Send(&Msg{Bits: dispMoveSendOnce, Remote: so, ID: 2}, 0)
	})
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: so, ID: 1}, 0))
	sendInFlightHook = nil
	require.Equal(t, 1, *fired)
	assert.Equal(t, int32(abi.MACH_SEND_INVALID_DEST), second, "the right was the first message's already")
	assert.Equal(t, []int32{1}, drainIDs(queue), "one message per send-once right")
}

// The same with a send right: a name's only send reference moved by two messages at once.
// xnu's copy-in of MOVE_SEND of the last user reference takes the send right off the name
// (ipc_right_copyin, MACH_MSG_TYPE_MOVE_SEND: the entry keeps only its receive right), so a
// second message moving it fails with MACH_SEND_INVALID_RIGHT and the name has no send
// reference left. The emulation lets both copy it in (useSend compares the entry's references
// with what this transfer took, not with what transfers in flight took): two send rights leave
// where one existed, and the second commit's dropMovedDead finds nothing to take.
// Fix: take the references from e.sendRefs in useSend at copy-in (see the file comment).
func TestWindowLastSendRightMovedTwice(t *testing.T) {
	queue := newTestPort(t, 0)
	port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1) })
	var second int32
	var refsInWindow uint32
	fired := inWindow(t, func() {
		refsInWindow, _ = GetRefs(port, abi.MACH_PORT_RIGHT_SEND)
		second = Send(&Msg{Bits: dispCopySend, Remote: queue, ID: 2,
			Descs: []Desc{{Name: port, Disp: dispMoveSend}}}, 0)
	})
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: queue, ID: 1,
		Descs: []Desc{{Name: port, Disp: dispMoveSend}}}, 0))
	sendInFlightHook = nil
	require.Equal(t, 1, *fired)
	assert.Equal(t, uint32(0), refsInWindow, "the send reference is the message's")
	assert.Equal(t, int32(abi.MACH_SEND_INVALID_RIGHT), second, "the only send reference moved already")
	// Whatever arrived carries send rights back to port, under port's own name.
	drainIDs(queue)
	refs, _ := GetRefs(port, abi.MACH_PORT_RIGHT_SEND)
	assert.Equal(t, uint32(1), refs, "one send reference went out, and one came back")
}

// A name whose send-once right is in flight, looked at or released by another thread: after
// xnu's copy-in the name is gone (ipc_right_copyin, MOVE_SEND_ONCE: ipc_entry_dealloc), so
// mach_port_type, mach_port_deallocate, mach_port_mod_refs and mach_port_request_notification
// on it answer KERN_INVALID_NAME (ipc_right_lookup_write). The emulation still finds the right
// under the name: mach_port_deallocate "succeeds" on a right that then arrives with its message
// (the right used twice: released and sent), and a dead-name request armed on it is taken by the
// commit as a release, which sends MACH_NOTIFY_PORT_DELETED for a request xnu never accepted.
// Fix: as the file comment (the name leaves at copy-in).
func TestWindowMovedSendOnceStillNamed(t *testing.T) {
	cases := []struct {
		name string
		op   func(so, notify uint32) int32
	}{
		{"mach_port_type", func(so, _ uint32) int32 { _, kr := Type(so); return kr }},
		{"mach_port_deallocate", func(so, _ uint32) int32 { return Deallocate(so) }},
		{"mach_port_mod_refs", func(so, _ uint32) int32 { return ModRefs(so, abi.MACH_PORT_RIGHT_SEND_ONCE, -1) }},
		{"dead-name request", func(so, notify uint32) int32 {
			_, kr := RequestNotification(so, abi.MACH_NOTIFY_DEAD_NAME, 1, notify, dispMakeSendOnce)
			return kr
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			queue := newTestPort(t, 0)
			notify := newTestPort(t, 0)
			so, _, kr := ExtractRight(queue, dispMakeSendOnce)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			var got int32
			fired := inWindow(t, func() { got = tc.op(so, notify) })
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: so, ID: 1}, 0))
			sendInFlightHook = nil
			require.Equal(t, 1, *fired)
			assert.Equal(t, int32(abi.KERN_INVALID_NAME), got, "the name left with the right at copy-in")
			assert.Equal(t, []int32{1}, drainIDs(queue))
			assert.Empty(t, drainIDs(notify), "no notification for a request that was never armed")
		})
	}
}

// A receive right in flight inside this process, used by another thread through its old name.
// xnu's copy-in of MOVE_RECEIVE takes the receive right off the name and out of its port sets
// at once (ipc_right_copyin, MACH_MSG_TYPE_MOVE_RECEIVE: ipc_port_clear_receiver, which unlinks
// the port from every set, then ipc_entry_dealloc of a name left empty): a receive on the name
// answers MACH_RCV_INVALID_NAME, a receive on the set it was in finds nothing, destroying it
// answers KERN_INVALID_NAME (so do mach_port_extract_member and mach_port_request_notification
// on the name), and whatever was queued on the port arrives with the right at its new holder. The emulation leaves the right under its name until commit: the old holder's
// receive takes a message queued for the new holder (lost to it), and a destroy kills the port
// in flight (the new holder gets MACH_PORT_DEAD, the queued message destroyed).
// Fix: as the file comment: at copy-in, e.recv = nil and sp.leaveSets(p) (parkReceive already
// does this for port-destroyed notifications), given back by tx.undos.
func TestWindowMovedReceiveStillUsable(t *testing.T) {
	cases := []struct {
		name string
		op   func(port, set uint32) int32
		want int32
	}{
		{"receive on its name", func(port, _ uint32) int32 { _, kr := tryReceiveNow(port); return kr },
			abi.MACH_RCV_INVALID_NAME},
		{"receive on its port set", func(_, set uint32) int32 { _, kr := tryReceiveNow(set); return kr },
			abi.MACH_RCV_TIMED_OUT},
		{"destroyed", func(port, _ uint32) int32 { return ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1) },
			abi.KERN_INVALID_NAME},
		{"taken out of its port set", func(port, set uint32) int32 { return ExtractMember(port, set) },
			abi.KERN_INVALID_NAME},
		{"no-senders request", func(port, _ uint32) int32 {
			notify, kr := Construct(0, 0, 0)
			if kr != abi.KERN_SUCCESS {
				return kr
			}
			t.Cleanup(func() { ModRefs(notify, abi.MACH_PORT_RIGHT_RECEIVE, -1) })
			_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 0, notify, dispMakeSendOnce)
			return kr
		}, abi.KERN_INVALID_NAME},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			queue := newTestPort(t, 0)
			port, kr := Construct(0, 0, 0)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			set, kr := Allocate(abi.MACH_PORT_RIGHT_PORT_SET)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			t.Cleanup(func() { Deallocate(set) })
			require.Equal(t, int32(abi.KERN_SUCCESS), InsertMember(port, set))
			so, _, kr := ExtractRight(port, dispMakeSendOnce)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: so, ID: 7}, 0))

			var got int32
			fired := inWindow(t, func() { got = tc.op(port, set) })
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: queue, ID: 1,
				Descs: []Desc{{Name: port, Disp: dispMoveReceive}}}, 0))
			sendInFlightHook = nil
			require.Equal(t, 1, *fired)
			assert.Equal(t, tc.want, got, "the receive right was the message's")

			m, kr := tryReceiveNow(queue)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
			require.Len(t, m.Descs, 1)
			moved := m.Descs[0].Name
			require.NotEqual(t, uint32(abi.MACH_PORT_DEAD), moved, "the receive right arrived alive")
			t.Cleanup(func() { ModRefs(moved, abi.MACH_PORT_RIGHT_RECEIVE, -1) })
			assert.Equal(t, []int32{7}, drainIDs(moved), "what was queued came with the right")
		})
	}
}

// A send to a port of this process whose receive right is destroyed in the window, after the
// copy-in: xnu's ipc_kmsg_send finds the port inactive and "can pretend it got sent and was then
// immediately destroyed": it destroys the message (ipc_kmsg_destroy: carried rights released,
// a send-once right sends its port MACH_NOTIFY_SEND_ONCE) and returns MACH_MSG_SUCCESS. The
// emulation answers MACH_SEND_INVALID_DEST (deliverLocal for p.dead; deliver for the EPIPE of a
// send-once channel whose read end died with the port) and rolls the copy-in back, so the
// carried send-once right (and a destination send-once right) stays with the sender, whose send
// "failed".
// Fix: copyinDest checks a local port's liveness under the lock (tx.destPort: a port dead at
// copy-in is MACH_SEND_INVALID_DEST, as xnu's ipc_right_copyin finds a dead name); a send whose
// tx.destPort died after it (deliverLocal's p.dead, deliver's EPIPE) is then a delivery:
// success, with the message destroyed (enqueue, or tx.destroyCarried as for tx.dropped), as
// deliverLocal already does for localOnce and acquirePortDiedWaiting. (For a port of another
// process the emulation cannot tell when it died without a probe; that case is left as it is.)
func TestWindowLocalDestDiesInFlight(t *testing.T) {
	cases := []struct {
		name string
		// dest returns the destination name and disposition for a port whose receive right is
		// port, and whether the destination right is moved (gone after the send).
		dest func(t *testing.T, port uint32) (name uint32, disp uint32, moved bool)
	}{
		{"send right, straight into the queue", func(t *testing.T, port uint32) (uint32, uint32, bool) {
			require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(port, port, dispMakeSend))
			return port, dispCopySend, false
		}},
		{"send-once right, over its channel", func(t *testing.T, port uint32) (uint32, uint32, bool) {
			so, _, kr := ExtractRight(port, dispMakeSendOnce)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			return so, dispMoveSendOnce, true
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			port, kr := Construct(0, 0, 0)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			dest, disp, moved := tc.dest(t, port)
			other := newTestPort(t, 0)
			so, _, kr := ExtractRight(other, dispMakeSendOnce)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			fired := inWindow(t, func() {
				require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1))
			})
			got := Send(&Msg{Bits: disp, Remote: dest, ID: 1,
				Descs: []Desc{{Name: so, Disp: dispMoveSendOnce}}}, 0)
			sendInFlightHook = nil
			require.Equal(t, 1, *fired)
			t.Cleanup(func() {
				for _, n := range []uint32{port, dest, so} {
					if refs, kr := GetRefs(n, abi.MACH_PORT_RIGHT_DEAD_NAME); kr == abi.KERN_SUCCESS && refs > 0 {
						ModRefs(n, abi.MACH_PORT_RIGHT_DEAD_NAME, -int32(refs))
					}
					Deallocate(n)
				}
			})
			assert.Equal(t, int32(abi.MACH_MSG_SUCCESS), got, "sent, then destroyed with its dead port")
			_, kr = Type(so)
			assert.Equal(t, int32(abi.KERN_INVALID_NAME), kr, "the carried right went with the message")
			// The carried right is a channel of its own, whose port learns of its release unused
			// from the hang-up, a moment later (as for mach_port_deallocate: localsend_test.go).
			assert.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), receiveWithin(t, other).ID, "destroyed, the send-once right told its port")
			assert.Empty(t, drainIDs(other))
			if moved {
				_, kr = Type(dest)
				assert.Equal(t, int32(abi.KERN_INVALID_NAME), kr, "the destination right was used")
			}
		})
	}
}

// A MAKE_SEND carried by a message counts in the port's make-send count from the copy-in on
// xnu (ipc_right_copyin, MACH_MSG_TYPE_MAKE_SEND: ip_mscount++ with the space locked), so
// mach_port_get_attributes(MACH_PORT_RECEIVE_STATUS) during the send reports it. The emulation
// counts it at commit (tx.moves: p.mscount++), so the window shows the count without it.
// Cosmetic (a no-senders request made in the window compares its sync with a count one short,
// but the message's send right exists then, so the request arms either way); the fix is the
// same: count at copy-in (right, copyinDest) and take the count back in tx.undos (handBack
// counts again the right it makes for a timed-out send).
func TestWindowMakeSendCountedAtCommit(t *testing.T) {
	queue := newTestPort(t, 0)
	port, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1) })
	var mscount int32 = -1
	fired := inWindow(t, func() {
		var status [abi.MACH_PORT_RECEIVE_STATUS_COUNT]int32
		_, kr := GetAttributes(port, abi.MACH_PORT_RECEIVE_STATUS, status[:])
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		mscount = status[2]
	})
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: queue, ID: 1,
		Descs: []Desc{{Name: port, Disp: dispMakeSend}}}, 0))
	sendInFlightHook = nil
	require.Equal(t, 1, *fired)
	assert.Equal(t, int32(1), mscount, "the right the message made is counted from its copy-in")
	m, kr := tryReceiveNow(queue)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
	for _, d := range m.Descs {
		ModRefs(d.Name, abi.MACH_PORT_RIGHT_SEND, -1)
	}
}

// A send that times out hands its message back (mach/doc.go: "as on macOS"), but on xnu the
// copy-in that came first already released the moved right's name with its dead-name request:
// ipc_right_copyin of MOVE_SEND_ONCE cancels the request (ipc_right_request_cancel) and
// ipc_object_copyin sends its send-once right MACH_NOTIFY_PORT_DELETED, whatever becomes of the
// send; ipc_kmsg_copyout_pseudo then names the send-once right anew, without a request. The
// emulation's rollback (tx.undos: nothing was taken) leaves the request armed and sends nothing,
// so the notify port never hears of the deletion xnu reports, and the request fires later for a
// name xnu no longer watches (wrong notification).
// Fix: with moves taken at copy-in (file comment), a dead-name request on a name the copy-in
// empties is released there (sp.dropIfEmpty sends PORT_DELETED), and handBack re-names the
// right without one.
func TestWindowTimedOutSendCancelsDeadNameRequest(t *testing.T) {
	full := newTestPort(t, 1)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: full, ID: 1}, 0))
	target := newTestPort(t, 0)
	notify := newTestPort(t, 0)
	so, _, kr := ExtractRight(target, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	_, kr = RequestNotification(so, abi.MACH_NOTIFY_DEAD_NAME, 1, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)

	m := &Msg{Bits: dispCopySend, Remote: full, ID: 2, Descs: []Desc{{Name: so, Disp: dispMoveSendOnce}}}
	require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(m, 0))
	back := m.Descs[0].Name
	t.Cleanup(func() { Deallocate(back) })
	assert.Equal(t, []int32{abi.MACH_NOTIFY_PORT_DELETED}, drainIDs(notify), "the copy-in released the name")
	typ, kr := Type(back)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	assert.Zero(t, typ&abi.MACH_PORT_TYPE_DNREQUEST, "the handed-back right has no dead-name request")
	drainIDs(full)
}

// Two threads move the same receive right at once. xnu's copy-in takes it from the name
// (ipc_right_copyin, MACH_MSG_TYPE_MOVE_RECEIVE), so the second send fails with
// MACH_SEND_INVALID_RIGHT. The emulation copies it into both messages (the taken() check is per
// transfer, and the second commit's "e.recv == p" test just skips), and each message carries a
// token for the same port: received, the port gets a receive right under two names (the second
// copyoutReceive finds byPort's entry holding it and makes a new one): a duplicated receive right,
// whose two holders share one queue and both destroy it.
// Fix: as the file comment (e.recv = nil at copy-in).
func TestWindowReceiveRightMovedTwice(t *testing.T) {
	queue := newTestPort(t, 0)
	port, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	move := func(id int32) int32 {
		return Send(&Msg{Bits: dispCopySend, Remote: queue, ID: id,
			Descs: []Desc{{Name: port, Disp: dispMoveReceive}}}, 0)
	}
	var second int32
	fired := inWindow(t, func() { second = move(2) })
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), move(1))
	sendInFlightHook = nil
	require.Equal(t, 1, *fired)
	assert.Equal(t, int32(abi.MACH_SEND_INVALID_RIGHT), second, "the receive right was the first message's")
	var holders []uint32
	for {
		m, kr := tryReceiveNow(queue)
		if kr != abi.MACH_MSG_SUCCESS {
			break
		}
		for _, d := range m.Descs {
			if d.Name != abi.MACH_PORT_NULL && d.Name != abi.MACH_PORT_DEAD {
				holders = append(holders, d.Name)
			}
		}
	}
	t.Cleanup(func() {
		for _, n := range holders {
			ModRefs(n, abi.MACH_PORT_RIGHT_RECEIVE, -1)
		}
	})
	assert.Len(t, holders, 1, "one name holds the receive right")
}

// Not a race, but the same copy-in: a receive right sent into a message to a port whose own
// receive right travels in that port's queue makes a cycle no name can reach. xnu's
// ipc_kmsg_copyin_body checks every receive right it copies in (ipc_port_check_circularity) and
// marks the message MACH_MSGH_BITS_CIRCULAR; ipc_kmsg_send then destroys it and returns
// MACH_MSG_SUCCESS ("don't allow the creation of a circular loop"), which destroys the receive
// right it carried, and with its queue the other one: both names' send rights become dead
// names. The emulation has no check, so both ports live on, unreachable, with their fds, until
// the process exits (a leak of two ports per cycle).
// Fix: in right (dispMoveReceive), walk from tx.destPort through receive rights travelling inside
// this process (sp.tokens: which port's queue holds each) and, when the walk reaches the port
// being moved, mark the transfer circular; Send then commits it and destroys the message
// (tx.destroyCarried) instead of queuing it, as it does for tx.dropped.
func TestWindowCircularReceiveRights(t *testing.T) {
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
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: b, ID: 1,
		Descs: []Desc{{Name: a, Disp: dispMoveReceive}}}, 0))
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: a, ID: 2,
		Descs: []Desc{{Name: b, Disp: dispMoveReceive}}}, 0))
	for _, n := range []uint32{a, b} {
		typ, kr := Type(n)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		assert.Equal(t, uint32(abi.MACH_PORT_TYPE_DEAD_NAME), typ, "the circular message destroyed both ports")
	}
}

// Not a race, but the same copy-in: moving a receive right resets the port's make-send count,
// sequence number and context (ipc_right_copyin, MOVE_RECEIVE: ipc_port_clear_receiver, "Also
// clear the mscount, seqno, guard bits": ip_mscount = 0, imq_seqno = 0, ip_context = 0), so its
// new holder sees a fresh port: mach_port_get_attributes(MACH_PORT_RECEIVE_STATUS) reports
// mscount 0 and seqno 0, and the first message it receives has seqno 0 and context 0 in its
// trailer. The emulation keeps all three across the move (the port object travels as it is),
// so a no-senders request the new holder makes with sync 1 (after one MAKE_SEND of its own)
// compares with the old holder's count (wrong notification), and trailers carry the old
// holder's context.
// Fix: reset p.mscount, p.seqno and p.context (and p.guarded) where the move commits (or, once
// moves are taken at copy-in, there), as ipc_port_clear_receiver does.
func TestWindowMovedReceiveKeepsPortState(t *testing.T) {
	queue := newTestPort(t, 0)
	port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 42)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1}, 0))
	_, kr = tryReceiveNow(port)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)

	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: queue, ID: 2,
		Descs: []Desc{{Name: port, Disp: dispMoveReceive}}}, 0))
	m, kr := tryReceiveNow(queue)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
	require.Len(t, m.Descs, 1)
	moved := m.Descs[0].Name
	t.Cleanup(func() { Destruct(moved, -1, 0) })

	var status [abi.MACH_PORT_RECEIVE_STATUS_COUNT]int32
	_, kr = GetAttributes(moved, abi.MACH_PORT_RECEIVE_STATUS, status[:])
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	assert.Equal(t, int32(0), status[2], "mscount starts again at the new holder")
	assert.Equal(t, int32(0), status[1], "seqno starts again at the new holder")
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: moved, ID: 3}, 0))
	got, kr := tryReceiveNow(moved)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
	assert.Equal(t, uint32(0), got.Seqno, "the first message at the new holder")
	assert.Equal(t, uint64(0), got.Context, "the old holder's context does not travel")
}

// A right whose port died, or a dead name, carried in a message: xnu's copy-in of the body
// (ipc_kmsg_copyin_port_descriptor: ipc_object_copyin with IPC_OBJECT_COPYIN_FLAGS_DEADOK, as
// for the reply port in ipc_kmsg_copyin_header) accepts a dead name for MOVE_SEND, COPY_SEND and
// MOVE_SEND_ONCE (ipc_right_copyin: move_dead takes one user reference, copy_dead none) and the
// descriptor arrives as MACH_PORT_DEAD. The emulation refuses the whole message with
// MACH_SEND_INVALID_RIGHT (right: refreshDead, then no send or send-once right), so a message
// that would be delivered on macOS is not (a reply carrying a right whose port just died is lost),
// and whether it goes depends on whether the port died before the copy-in or in the window
// after it (TestMovedRightDiesInFlight's case, which goes).
// Fix: in right, for those three dispositions, accept an entry with deadRefs > 0 and no live
// right: the record is kindNoPort with size MACH_PORT_DEAD (as noPort makes), and a move takes
// one dead-name reference in tx.moves (dropMovedDead does exactly that).
func TestWindowDeadNameCarried(t *testing.T) {
	cases := []struct {
		disp  uint8
		keeps uint32 // dead-name references left to the sender
	}{
		{dispMoveSend, 1},
		{dispCopySend, 2},
		{dispMoveSendOnce, 1},
	}
	for _, tc := range cases {
		t.Run(map[uint8]string{dispMoveSend: "move send", dispCopySend: "copy send", dispMoveSendOnce: "move send-once"}[tc.disp], func(t *testing.T) {
			queue := newTestPort(t, 0)
			dead, kr := Allocate(abi.MACH_PORT_RIGHT_DEAD_NAME)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(dead, abi.MACH_PORT_RIGHT_DEAD_NAME, 1))
			t.Cleanup(func() {
				if refs, kr := GetRefs(dead, abi.MACH_PORT_RIGHT_DEAD_NAME); kr == abi.KERN_SUCCESS && refs > 0 {
					ModRefs(dead, abi.MACH_PORT_RIGHT_DEAD_NAME, -int32(refs))
				}
			})
			kr = Send(&Msg{Bits: dispCopySend, Remote: queue, ID: 1, Descs: []Desc{{Name: dead, Disp: tc.disp}}}, 0)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr, "a dead name travels as MACH_PORT_DEAD")
			m, kr := tryReceiveNow(queue)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
			require.Len(t, m.Descs, 1)
			assert.Equal(t, uint32(abi.MACH_PORT_DEAD), m.Descs[0].Name)
			refs, _ := GetRefs(dead, abi.MACH_PORT_RIGHT_DEAD_NAME)
			assert.Equal(t, tc.keeps, refs)
		})
	}
}

// A send that times out after a carried right's port died in its window: xnu hands the message
// back (ipc_kmsg_copyout_pseudo), and the copy-out of a right whose port is dead gives
// MACH_PORT_DEAD and destroys the right (ipc_kmsg_copyout_object: ipc_object_copyout fails with
// KERN_INVALID_CAPABILITY, ipc_object_destroy, *namep = MACH_PORT_DEAD); the name went at
// copy-in, so nothing is left under it. The emulation's rollback leaves the right under its name
// (where it turns into a dead name when looked at) and handBackRight returns that name, so the
// caller gets a name for a right xnu would have reported dead, and a dead name stays in the
// space that macOS would not have (a leaked name for code that, as on macOS, releases nothing
// for MACH_PORT_DEAD).
// Fix: handBackRight refreshes the entry (sp.refreshDead) and, for a moved right that is now a
// dead name, takes that dead-name reference and returns MACH_PORT_DEAD (as its doc comment
// already promises for "a right that is gone meanwhile").
func TestWindowTimedOutSendHandsBackDeadRight(t *testing.T) {
	full := newTestPort(t, 1)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: full, ID: 1}, 0))
	t.Cleanup(func() { drainIDs(full) })
	port, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	so, _, kr := ExtractRight(port, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	fired := inWindow(t, func() {
		require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1))
	})
	m := &Msg{Bits: dispCopySend, Remote: full, ID: 2, Descs: []Desc{{Name: so, Disp: dispMoveSendOnce}}}
	require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(m, 0))
	sendInFlightHook = nil
	require.Equal(t, 1, *fired)
	t.Cleanup(func() { ModRefs(so, abi.MACH_PORT_RIGHT_DEAD_NAME, -1) })
	assert.Equal(t, uint32(abi.MACH_PORT_DEAD), m.Descs[0].Name, "handed back dead")
	_, kr = Type(so)
	assert.Equal(t, int32(abi.KERN_INVALID_NAME), kr, "no dead name left behind")
}

// A dead-name request armed on a send-once right before a send moves it, cancelled by another
// thread while the send is in flight: xnu's copy-in already cancelled the request and sent its
// right MACH_NOTIFY_PORT_DELETED (ipc_right_copyin, MOVE_SEND_ONCE: ipc_right_request_cancel;
// ipc_object_copyin: ipc_notify_port_deleted), so the cancel finds no name (KERN_INVALID_NAME)
// and the notify port has its PORT_DELETED. The emulation lets the cancel take the request off
// the name silently (RequestNotification with MACH_PORT_NULL), and the commit then finds no
// request to report: the notify port never hears of the deletion (a missing notification; a
// program waiting for PORT_DELETED or DEAD_NAME to release its bookkeeping waits forever).
// Fix: as the file comment (the name and its request leave at copy-in, where dropIfEmpty sends
// PORT_DELETED).
func TestWindowDeadNameRequestCancelledInFlight(t *testing.T) {
	queue := newTestPort(t, 0)
	notify := newTestPort(t, 0)
	so, _, kr := ExtractRight(queue, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	_, kr = RequestNotification(so, abi.MACH_NOTIFY_DEAD_NAME, 1, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	var cancel int32
	fired := inWindow(t, func() {
		_, cancel = RequestNotification(so, abi.MACH_NOTIFY_DEAD_NAME, 0, abi.MACH_PORT_NULL, 0)
	})
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: so, ID: 1}, 0))
	sendInFlightHook = nil
	require.Equal(t, 1, *fired)
	assert.Equal(t, int32(abi.KERN_INVALID_NAME), cancel, "the name left at copy-in")
	assert.Equal(t, []int32{abi.MACH_NOTIFY_PORT_DELETED}, drainIDs(notify), "the copy-in released the request")
	assert.Equal(t, []int32{1}, drainIDs(queue))
}
