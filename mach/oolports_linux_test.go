package mach_test

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	. "github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// On Linux the emulation refuses out-of-line port arrays and guarded port descriptors with
// MACH_SEND_INVALID_TYPE, leaving every right with the sender. Through the libSystem double the
// Darwin logic encodes them, and the double reads them as xnu's copy-in does (the array of names
// through its raw address) before refusing them the same way: what it read is what was meant.
func TestSendOOLPortsAndGuardedOnLinux(t *testing.T) {
	for _, through := range []string{"emulation", "double"} {
		t.Run(through, func(t *testing.T) {
			if through == "double" {
				UseLibSystemDouble(t)
			} else {
				UseEmulation(t)
			}
			checkLeaks(t)
			libsystemdouble.Uncarried() // forget what earlier tests left
			newPort := func(opts PortOptions) (*ReceiveRight, *SendRight) {
				r, err := NewPort(opts)
				require.NoError(t, err)
				s, err := r.MakeSend()
				require.NoError(t, err)
				t.Cleanup(func() { s.Close(); r.Close() })
				return r, s
			}
			dest, destSend := newPort(PortOptions{QueueLimit: 4})
			a, aSend := newPort(PortOptions{})
			b, _ := newPort(PortOptions{})
			guarded, _ := newPort(PortOptions{})
			for _, tc := range []struct {
				name string
				desc Descriptor
				want libsystemdouble.UncarriedDescriptor
			}{
				{"array MAKE_SEND", &OOLPortsDescriptor{Ports: []Port{MakeSendOf(a), MakeSendOf(b)}, Copy: VirtualCopy},
					libsystemdouble.UncarriedDescriptor{Type: abi.MACH_MSG_OOL_PORTS_DESCRIPTOR, Disposition: abi.MACH_MSG_TYPE_MAKE_SEND,
						Names: []uint32{uint32(a.Name()), uint32(b.Name())}, Copy: abi.MACH_MSG_VIRTUAL_COPY}},
				{"array MOVE_SEND", &OOLPortsDescriptor{Ports: []Port{MoveSendOf(aSend), {}}},
					libsystemdouble.UncarriedDescriptor{Type: abi.MACH_MSG_OOL_PORTS_DESCRIPTOR, Disposition: abi.MACH_MSG_TYPE_MOVE_SEND,
						Names: []uint32{uint32(a.Name()), 0}}},
				{"guarded MOVE_RECEIVE", &GuardedPortDescriptor{Port: MoveReceiveOf(guarded), Context: 0x1234, Flags: GuardFlagImmovableReceive},
					libsystemdouble.UncarriedDescriptor{Type: abi.MACH_MSG_GUARDED_PORT_DESCRIPTOR, Disposition: abi.MACH_MSG_TYPE_MOVE_RECEIVE,
						Names: []uint32{uint32(guarded.Name())}, Context: 0x1234, Flags: uint16(GuardFlagImmovableReceive)}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					refs, err := Refs(aSend.Name(), RightSend)
					require.NoError(t, err)
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					defer cancel()
					err = Send(ctx, &Message{Remote: CopySendOf(destSend), Descriptors: []Descriptor{tc.desc}})
					require.ErrorIs(t, err, SendInvalidType)
					got := libsystemdouble.Uncarried()
					if through == "double" {
						require.Equal(t, []libsystemdouble.UncarriedDescriptor{tc.want}, got)
					} else {
						require.Empty(t, got, "the emulation never reached the double")
					}
					// Nothing was taken: the moved rights are still the sender's, nothing was queued.
					after, err := Refs(aSend.Name(), RightSend)
					require.NoError(t, err)
					require.Equal(t, refs, after)
					ty, err := TypeOf(guarded.Name())
					require.NoError(t, err)
					require.True(t, ty.Has(TypeReceive))
					_, err = Peek(dest, PeekOptions{})
					require.ErrorIs(t, err, ErrNoMessage)
				})
			}
		})
	}
}
