//go:build linux

package emu

import (
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// A right a send moves leaves the sender's space with the send, as xnu's copy-in takes it, even
// when its port dies while the message is on its way and someone looks at the name meanwhile
// (which turns a right whose port died into a dead name). The emulation once took moved rights
// from the entry only when the send committed, with the space lock dropped in between: a commit
// that found its right turned into a dead name left that dead name behind for good (found as a
// leaked port name in cfmessageport's TestPairRefused: a server's reply went out, the requester
// closed its reply port, and a leak check listed the names before the server's send committed).
// The copy-in takes them now (msg.go: moveSendOnce, useSend), and this test keeps it so.
func TestMovedRightDiesInFlight(t *testing.T) {
	cases := []struct {
		name string
		// send sends a message that moves a right to port (whose receive right is port's name),
		// and returns the name of the moved right and the refs of it the name keeps.
		send      func(t *testing.T, port, queue uint32) (moved uint32, keeps uint32)
		delivered bool // the port dies after the datagram went out, not before
	}{
		{name: "destination send-once, after the datagram went", delivered: true,
			send: func(t *testing.T, port, _ uint32) (uint32, uint32) {
				so, _, kr := ExtractRight(port, dispMakeSendOnce)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: so, ID: 1}, 0))
				return so, 0
			}},
		{name: "carried send-once",
			send: func(t *testing.T, port, queue uint32) (uint32, uint32) {
				so, _, kr := ExtractRight(port, dispMakeSendOnce)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: queue, ID: 2,
					Descs: []Desc{{Name: so, Disp: dispMoveSendOnce}}}, 0))
				return so, 0
			}},
		{name: "carried send right, one of two references",
			send: func(t *testing.T, port, queue uint32) (uint32, uint32) {
				require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(port, port, dispMakeSend))
				require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(port, port, dispMakeSend))
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: queue, ID: 3,
					Descs: []Desc{{Name: port, Disp: dispMoveSend}}}, 0))
				return port, 1
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			queue := newTestPort(t, 0)
			port, kr := Construct(0, 0, 0)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			before := len(namesNow())
			var fired int
			sendInFlightHook = func(delivered bool) {
				if delivered != tc.delivered || fired > 0 {
					return
				}
				fired++
				require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1))
				namesNow() // looks at every name, as a leak check does
			}
			t.Cleanup(func() { sendInFlightHook = nil })
			moved, keeps := tc.send(t, port, queue)
			sendInFlightHook = nil
			require.Equal(t, 1, fired, "the port died while the send was in flight")
			if keeps == 0 {
				_, kr := Type(moved)
				require.Equal(t, int32(abi.KERN_INVALID_NAME), kr, "the moved right left with its message")
			} else {
				refs, kr := GetRefs(moved, abi.MACH_PORT_RIGHT_DEAD_NAME)
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				require.Equal(t, keeps, refs, "the references the send did not take are a dead name")
				require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(moved, abi.MACH_PORT_RIGHT_DEAD_NAME, -int32(keeps)))
			}
			if m, kr := tryReceiveNow(queue); kr == abi.MACH_MSG_SUCCESS {
				for _, d := range m.Descs {
					require.Equal(t, uint32(abi.MACH_PORT_DEAD), d.Name, "the carried right's port is gone")
				}
			}
			require.Len(t, namesNow(), before-1, "only the destroyed port's name is gone")
		})
	}
}

func namesNow() []uint32 {
	names, _ := Names()
	return names
}
