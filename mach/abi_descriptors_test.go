package mach

import (
	"strconv"
	"testing"
	"unsafe"

	"github.com/machport/machport/internal/abitest"
	"github.com/stretchr/testify/require"
)

// The out-of-line port array and guarded port descriptors encode every field where the SDK puts
// it on both targets, and their type codes and guard flags are the SDK's.
func TestABIOOLPortsAndGuardedDescriptors(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	for name, want := range map[string]uint64{
		"MACH_MSG_OOL_PORTS_DESCRIPTOR":          uint64(OOLPortsDescriptorType),
		"MACH_MSG_GUARDED_PORT_DESCRIPTOR":       uint64(GuardedPortDescriptorType),
		"MACH_MSG_GUARD_FLAGS_NONE":              uint64(GuardFlagsNone),
		"MACH_MSG_GUARD_FLAGS_IMMOVABLE_RECEIVE": uint64(GuardFlagImmovableReceive),
		"MACH_MSG_GUARD_FLAGS_UNGUARDED_ON_SEND": uint64(GuardFlagUnguardedOnSend),
	} {
		v, ok := facts.Constant(name)
		require.True(t, ok, name)
		require.Equal(t, v.String(), strconv.FormatUint(want, 10), name)
	}
	for _, target := range abitest.Targets {
		ports := &OOLPortsDescriptor{Ports: []Port{{Name: 0x1103, Disposition: MakeSend}, {Name: 0x2203, Disposition: MakeSend}}, Copy: VirtualCopy}
		guarded := &GuardedPortDescriptor{Port: Port{Name: 0x3303, Disposition: MoveReceive}, Context: 0x1122334455667788, Flags: GuardFlagImmovableReceive | GuardFlagUnguardedOnSend}
		m := &Message{Remote: Port{Name: 0x4403, Disposition: CopySend}, Descriptors: []Descriptor{ports, guarded}}
		b, err := m.Append(nil)
		require.NoError(t, err)
		require.Equal(t, baseSize+oolPortsDescriptorSize+guardedPortDescriptorSize, len(b))
		off := baseSize
		checkEncoded(t, target, "mach_msg_ool_ports_descriptor_t", b[off:off+oolPortsDescriptorSize], map[string]uint64{
			"address":     uint64(uintptr(unsafe.Pointer(&ports.names[0]))),
			"deallocate":  0,
			"copy":        uint64(VirtualCopy),
			"disposition": uint64(MakeSend),
			"type":        uint64(OOLPortsDescriptorType),
			"count":       2,
		})
		require.Equal(t, []uint32{0x1103, 0x2203}, ports.names, "the array the address points at")
		off += oolPortsDescriptorSize
		checkEncoded(t, target, "mach_msg_guarded_port_descriptor_t", b[off:off+guardedPortDescriptorSize], map[string]uint64{
			"context":     0x1122334455667788,
			"flags":       uint64(GuardFlagImmovableReceive | GuardFlagUnguardedOnSend),
			"disposition": uint64(MoveReceive),
			"type":        uint64(GuardedPortDescriptorType),
			"name":        0x3303,
		})
		require.Equal(t, oolPortsDescriptorSize, layout(t, target, "mach_msg_ool_ports_descriptor_t").Size)
		require.Equal(t, guardedPortDescriptorSize, layout(t, target, "mach_msg_guarded_port_descriptor_t").Size)

		// Decoded again, they are the received kinds this package does not adopt, byte for byte.
		got, err := Decode(b)
		require.NoError(t, err)
		require.Len(t, got.Descriptors, 2)
		require.Equal(t, OOLPortsDescriptorType, got.Descriptors[0].Type())
		require.Equal(t, GuardedPortDescriptorType, got.Descriptors[1].Type())
	}
	mixed := &Message{Remote: Port{Name: 1, Disposition: CopySend}, Descriptors: []Descriptor{
		&OOLPortsDescriptor{Ports: []Port{{Name: 2, Disposition: CopySend}, {Name: 3, Disposition: MoveSend}}}}}
	_, err = mixed.Append(nil)
	require.ErrorIs(t, err, ErrInvalidMessage, "one disposition per array")
}
