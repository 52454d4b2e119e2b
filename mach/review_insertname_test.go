package mach_test

import (
	"testing"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// Review finding (issue 17, Mach difference 3; suite_fidelity_test.go
// TestFidelityInsertRightUnderAnotherName): current xnu checks a name's generation bits before
// its index. ipc_entry_alloc_name (osfmk/ipc/ipc_entry.c) returns KERN_INVALID_VALUE when
// name != ipc_entry_name_mask(name), that is when the name's low two bits are not 0b11, and only
// then KERN_FAILURE for index 0 or for an index in use under another generation.
// tests/mach_port_insert_right.c in apple-oss-distributions/xnu asserts exactly that (name 122:
// KERN_INVALID_VALUE); the fidelity test follows the older darwin-xnu version of that test
// (name = port + 1: KERN_FAILURE), which current kernels no longer give, and the emulation
// answers as the older kernel. On macOS the fidelity test's b.Name()+1 case fails.
func TestReviewInsertRightNameGeneration(t *testing.T) {
	checkLeaks(t)
	b, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, mach.Name(3), b.Name()&3, "names the kernel makes end in 0b11")
	for _, tc := range []struct {
		what string
		name mach.Name
		want mach.KernReturn
	}{
		{"122: invalid generation bits (xnu's own test)", 122, mach.KernInvalidValue},
		{"b+1: invalid generation bits, index in use", b.Name() + 1, mach.KernInvalidValue},
		{"b+2: invalid generation bits, index in use", b.Name() + 2, mach.KernInvalidValue},
		{"123: valid generation, index 0", 123, mach.KernFailure},
		{"b+4: valid generation, index in use under another", b.Name() + 4, mach.KernFailure},
	} {
		t.Run(tc.what, func(t *testing.T) {
			err := mach.InsertRight(tc.name, b.Name(), mach.MakeSend)
			require.ErrorIs(t, err, tc.want, "name %#x", uint32(tc.name))
		})
	}
	ty, err := mach.TypeOf(b.Name())
	require.NoError(t, err)
	require.Equal(t, mach.TypeReceive, ty, "no send right was left behind")
}
