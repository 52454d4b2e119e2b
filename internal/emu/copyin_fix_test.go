//go:build linux

package emu

import (
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A send that times out completed its copy-in on xnu before it waited (mach_msg_trap_send), so
// the dead-name request of a name a move freed was cancelled and MACH_NOTIFY_PORT_DELETED sent
// (ipc_kmsg_copyin_header: ipc_notify_port_deleted); ipc_kmsg_copyout_pseudo then hands the
// right back without a request. The emulation keeps the request aside at copy-in (dropMoved):
// the timed-out hand-back must fire it, not put it back as a failed send does.
func TestCopyinTimedOutSendFiresPortDeleted(t *testing.T) {
	dest := newTestPort(t, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), SetAttributes(dest, abi.MACH_PORT_LIMITS_INFO, []int32{0}))
	target := newTestPort(t, 0)
	notify := newTestPort(t, 0)
	so, _, kr := ExtractRight(target, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	_, kr = RequestNotification(so, abi.MACH_NOTIFY_DEAD_NAME, 1, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)

	m := &Msg{Bits: dispCopySend, Remote: dest, ID: 1, Descs: []Desc{{Name: so, Disp: dispMoveSendOnce}}}
	require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(m, 0), "the queue takes nothing (limit 0)")
	t.Cleanup(func() { Deallocate(m.Descs[0].Name) })

	assert.Equal(t, []int32{abi.MACH_NOTIFY_PORT_DELETED}, drainIDs(notify))
	typ, kr := Type(m.Descs[0].Name)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	assert.Equal(t, uint32(abi.MACH_PORT_TYPE_SEND_ONCE), typ, "handed back, without its request")
}

// After a failed send's MAKE_SEND was released without no-senders (quietMade), the request stays
// armed for the send right that really comes and goes next: its release fires it, once.
func TestCopyinNoBufferMakeSendKeepsRequestArmed(t *testing.T) {
	dest := newTestPort(t, 0)
	notify := newTestPort(t, 0)
	port, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1) })
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 1, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)

	failMemfds(t)
	data := make([]byte, 100)
	require.Equal(t, int32(abi.MACH_SEND_NO_BUFFER), Send(&Msg{Bits: dispCopySend, Remote: dest, ID: 1,
		Descs: []Desc{{Name: port, Disp: dispMakeSend}, {Memory: true, Data: data, Size: uint32(len(data)),
			Copy: abi.MACH_MSG_VIRTUAL_COPY}}}, 0))
	memfdCreate = unix.MemfdCreate
	require.Empty(t, drainIDs(notify))

	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(port, port, dispMakeSend))
	require.Empty(t, drainIDs(notify), "a send right exists")
	require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(port))
	assert.Equal(t, []int32{abi.MACH_NOTIFY_NO_SENDERS}, drainIDs(notify), "the real last send right went")
}

// The header checks come before any name is looked at, in xnu's order
// (ipc_kmsg_copyin_header_validate): the reply's disposition, then the voucher, then the
// destination's disposition, so a bad destination disposition is a header error even for a
// name that does not exist, and a bad reply disposition wins over a voucher.
func TestCopyinHeaderChecksOrder(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Msg
		want int32
	}{
		{"dest move-receive, no such name", Msg{Bits: dispMoveReceive, Remote: 0xfffff03}, abi.MACH_SEND_INVALID_HEADER},
		{"dest none", Msg{Bits: 0, Remote: 0xfffff03}, abi.MACH_SEND_INVALID_HEADER},
		{"bad reply before voucher", Msg{Bits: dispCopySend | 25<<8, Remote: 0xfffff03, Local: 0xfffff03, Voucher: 5}, abi.MACH_SEND_INVALID_HEADER},
		{"voucher before dest", Msg{Bits: dispMoveReceive, Remote: 0xfffff03, Voucher: 5}, abi.MACH_SEND_INVALID_VOUCHER},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m
			assert.Equal(t, tc.want, Send(&m, 0))
		})
	}
}

// The other pairs of xnu's same-name copy-in (ipc_kmsg_copyin_dest_disposition): copy-send
// destination with move-send reply moves once and copies (one reference is enough), two
// move-sends with two references take both, and a move-send-once reply is a destination error.
func TestCopyinSameNamePairs(t *testing.T) {
	for _, tc := range []struct {
		name       string
		refs       uint32 // send references under the port's name
		dest, repl uint8
		want       int32
		left       uint32 // send references left after the send
	}{
		{"copy-send dest, move-send reply, one ref", 1, dispCopySend, dispMoveSend, abi.MACH_MSG_SUCCESS, 0},
		{"move-send both, two refs", 2, dispMoveSend, dispMoveSend, abi.MACH_MSG_SUCCESS, 0},
		{"copy-send both, one ref", 1, dispCopySend, dispCopySend, abi.MACH_MSG_SUCCESS, 1},
		{"copy-send dest, move-send-once reply", 1, dispCopySend, dispMoveSendOnce, abi.MACH_SEND_INVALID_DEST, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := newTestPort(t, 0)
			for range tc.refs - 1 {
				require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(port, port, dispMakeSend))
			}
			got := Send(&Msg{Bits: uint32(tc.dest) | uint32(tc.repl)<<8, Remote: port, Local: port, ID: 1}, 0)
			require.Equal(t, tc.want, got)
			if got == abi.MACH_MSG_SUCCESS {
				m, kr := tryReceiveNow(port)
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
				assert.Equal(t, port, m.Remote, "the reply is a send right under the port's name")
				assert.Equal(t, uint32(dispMoveSend), m.Bits>>8&0xff, "received as MACH_MSG_TYPE_PORT_SEND")
				require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(port)) // the received reply right
			}
			refs, kr := GetRefs(port, abi.MACH_PORT_RIGHT_SEND)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			assert.Equal(t, tc.left, refs)
			if tc.left == 0 {
				// newTestPort's cleanup destroys one send reference with the receive right.
				require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(port, port, dispMakeSend))
			}
		})
	}
}

// A MOVE_RECEIVE that frees its name keeps the name's dead-name request aside too (xnu's
// ipc_right_copyin, MACH_MSG_TYPE_MOVE_RECEIVE, cancels it into *sorightp like the moves of send
// rights): a failed send gives it back, a sent one fires MACH_NOTIFY_PORT_DELETED.
func TestCopyinMoveReceiveKeepsDeadNameRequest(t *testing.T) {
	for _, fail := range []bool{true, false} {
		t.Run(map[bool]string{true: "no buffer", false: "sent"}[fail], func(t *testing.T) {
			dest := newTestPort(t, 0)
			notify := newTestPort(t, 0)
			port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			_, kr = RequestNotification(port, abi.MACH_NOTIFY_DEAD_NAME, 1, notify, dispMakeSendOnce)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(port)) // the receive right is left
			typ, kr := Type(port)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, uint32(abi.MACH_PORT_TYPE_RECEIVE|abi.MACH_PORT_TYPE_DNREQUEST), typ)

			descs := []Desc{{Name: port, Disp: dispMoveReceive}}
			if fail {
				failMemfds(t)
				descs = append(descs, Desc{Memory: true, Data: make([]byte, 100), Size: 100, Copy: abi.MACH_MSG_VIRTUAL_COPY})
			}
			kr = Send(&Msg{Bits: dispCopySend, Remote: dest, ID: 1, Descs: descs}, 0)
			memfdCreate = unix.MemfdCreate
			if fail {
				require.Equal(t, int32(abi.MACH_SEND_NO_BUFFER), kr)
				assert.Empty(t, drainIDs(notify))
				typ, kr := Type(port)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				assert.Equal(t, uint32(abi.MACH_PORT_TYPE_RECEIVE|abi.MACH_PORT_TYPE_DNREQUEST), typ)
				require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1))
				return
			}
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
			assert.Equal(t, []int32{abi.MACH_NOTIFY_PORT_DELETED}, drainIDs(notify))
			m, kr := tryReceiveNow(dest)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(m.Descs[0].Name, abi.MACH_PORT_RIGHT_RECEIVE, -1))
		})
	}
}
