package mach

import (
	"context"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// A send of an out-of-line port array and a guarded port that the kernel hands back
// (MACH_SEND_TIMED_OUT: ipc_kmsg_copyout_pseudo) keeps the books as for port descriptors: the
// rights the kernel made for the array are released, the receive right a guarded descriptor
// moved follows its new name, and the array the kernel copied the names out into is unmapped.
func TestSendHandedBackOOLPortsAndGuarded(t *testing.T) {
	f := installFake(t)
	f.sendRet = abi.MACH_SEND_TIMED_OUT
	dest := AdoptSend(0x103)
	a, b := AdoptReceive(0x203), AdoptReceive(0x303)
	guarded := AdoptReceive(0x407)
	m := &Message{Remote: CopySendOf(dest), ID: 5, Descriptors: []Descriptor{
		&OOLPortsDescriptor{Ports: []Port{MakeSendOf(a), MakeSendOf(b)}},
		&GuardedPortDescriptor{Port: MoveReceiveOf(guarded), Context: 0x99, Flags: GuardFlagImmovableReceive},
	}}
	copied := []uint32{0x203, 0x303} // the kernel's copy of the array, as copied out again
	f.rewrite = func(buf []byte) {
		var ports, g OtherDescriptor
		ports.Kind, ports.size = OOLPortsDescriptorType, otherDescriptorSize
		putOOLPortsDescriptor(ports.Raw[:], uint64(uintptr(unsafe.Pointer(&copied[0]))), 2, PhysicalCopy, PortSend)
		ports.Raw[8] = 1 // the kernel copies out with deallocate set
		g.Kind, g.size = GuardedPortDescriptorType, otherDescriptorSize
		putGuardedPortDescriptor(g.Raw[:], 0x607, PortReceive, 0x99, GuardFlagImmovableReceive)
		back := Message{Remote: Port{Name: 0x103, Disposition: PortSend}, ID: 5, Descriptors: []Descriptor{&ports, &g}}
		out, err := back.Append(nil)
		require.NoError(t, err)
		copy(buf, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	require.ErrorIs(t, Send(ctx, m), SendTimedOut)
	require.ElementsMatch(t, []string{
		"deallocate 0x103", // the extra send right COPY_SEND made
		"deallocate 0x203", // the send rights MAKE_SEND made for the array
		"deallocate 0x303",
		fmt.Sprintf("vm_deallocate %#x 8", uintptr(unsafe.Pointer(&copied[0]))), // the array's copy
	}, f.calls)
	require.Equal(t, Name(0x607), guarded.Name(), "the moved receive right follows its new name")
	require.False(t, guarded.s.gone.Load(), "and is still the caller's")
}

// A successful send takes the rights an array or a guarded descriptor moves, and leaves those
// it copies or makes from.
func TestSendOOLPortsAndGuardedMarksMoves(t *testing.T) {
	f := installFake(t)
	dest := AdoptSend(0x103)
	moved, kept := AdoptSend(0x203), AdoptSend(0x303)
	guarded := AdoptReceive(0x407)
	m := &Message{Remote: CopySendOf(dest), Descriptors: []Descriptor{
		&OOLPortsDescriptor{Ports: []Port{MoveSendOf(moved)}},
		&OOLPortsDescriptor{Ports: []Port{CopySendOf(kept)}},
		&GuardedPortDescriptor{Port: MoveReceiveOf(guarded)},
	}}
	require.NoError(t, Send(context.Background(), m))
	require.Len(t, f.sent, 1)
	require.True(t, moved.s.gone.Load())
	require.False(t, kept.s.gone.Load())
	require.True(t, guarded.s.gone.Load())
	err := Send(context.Background(), &Message{Remote: CopySendOf(dest), Descriptors: []Descriptor{
		&OOLPortsDescriptor{Ports: []Port{CopySendOf(moved)}}}})
	require.ErrorIs(t, err, ErrClosed, "a right an array moved is gone")
}
