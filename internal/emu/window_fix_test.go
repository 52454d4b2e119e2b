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
