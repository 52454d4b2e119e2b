//go:build linux

package emu

import (
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A port's receive right sent to the port itself: xnu's ipc_port_check_circularity answers TRUE
// for port == dest, so the message is destroyed and the send succeeds (ipc_kmsg_send,
// MACH_MSGH_BITS_CIRCULAR): the receive right dies with it, and the name's send right becomes a
// dead name. The emulation refused it with MACH_SEND_INVALID_RIGHT.
func TestCircularOwnReceiveRight(t *testing.T) {
	port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() {
		if typ, kr := Type(port); kr == abi.KERN_SUCCESS && typ&abi.MACH_PORT_TYPE_RECEIVE != 0 {
			Destruct(port, -1, 0)
		} else {
			ModRefs(port, abi.MACH_PORT_RIGHT_DEAD_NAME, -1)
		}
	})
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1,
		Descs: []Desc{{Name: port, Disp: dispMoveReceive}}}, 0))
	typ, kr := Type(port)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	assert.Equal(t, uint32(abi.MACH_PORT_TYPE_DEAD_NAME), typ, "the circular message destroyed the port")
}

// A receive right a timed-out send moved comes back under the name its port has by then: the
// copy-in freed its old name (it held nothing else), and in the window a send right to the port
// arrived, which took a new name. Rights to one port coalesce under one name, so the receive
// right joins that name (as copyoutReceive names a received one), and the send hands it back
// under it, not under a second name for the same port.
func TestTimedOutSendGivesReceiveBackUnderNewName(t *testing.T) {
	full := newTestPort(t, 1)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: full, ID: 1}, 0))
	t.Cleanup(func() { drainIDs(full) })
	carrier := newTestPort(t, 0)
	port, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	// A send right to port waits in carrier's queue, to be received in the window.
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: carrier, ID: 2,
		Descs: []Desc{{Name: port, Disp: dispMakeSend}}}, 0))
	var named uint32
	fired := inWindow(t, func() {
		m, kr := tryReceiveNow(carrier)
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
		named = m.Descs[0].Name
	})
	m := &Msg{Bits: dispCopySend, Remote: full, ID: 3, Descs: []Desc{{Name: port, Disp: dispMoveReceive}}}
	require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(m, 0))
	sendInFlightHook = nil
	require.Equal(t, 1, *fired)
	back := m.Descs[0].Name
	t.Cleanup(func() { Destruct(back, -1, 0) })
	assert.NotEqual(t, port, named, "the send right took a new name: the old one went at copy-in")
	assert.Equal(t, named, back, "handed back under the port's name")
	typ, kr := Type(back)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	assert.Equal(t, uint32(abi.MACH_PORT_TYPE_RECEIVE|abi.MACH_PORT_TYPE_SEND), typ)
	_, kr = Type(port)
	assert.Equal(t, int32(abi.KERN_INVALID_NAME), kr, "one name for the port")
}
