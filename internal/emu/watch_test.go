//go:build linux

package emu

import (
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// Every watch of a receive right runs, once and in order, when this process destroys the right,
// whether by mach_port_mod_refs or mach_port_destruct; a cancelled one does not. A name the
// bootstrap emulation serves is withdrawn by its watch, and one port may be registered under
// several names: before watches added up, a second watch replaced the first, whose name then
// outlived the port with its socket open.
func TestWatchReceiveSeveral(t *testing.T) {
	for _, tc := range []struct {
		name    string
		destroy func(name uint32) int32
	}{
		{name: "mod_refs", destroy: func(name uint32) int32 { return ModRefs(name, abi.MACH_PORT_RIGHT_RECEIVE, -1) }},
		{name: "destruct", destroy: func(name uint32) int32 { return Destruct(name, 0, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			var ran []int
			var cancels []func()
			for i := range 3 {
				cancel, kr := WatchReceive(name, func() {
					// Before the port dies: the right is still there.
					typ, kr := Type(name)
					require.Equal(t, int32(abi.KERN_SUCCESS), kr)
					require.NotZero(t, typ&abi.MACH_PORT_TYPE_RECEIVE)
					ran = append(ran, i)
				})
				require.Equal(t, int32(abi.KERN_SUCCESS), kr)
				cancels = append(cancels, cancel)
			}
			cancels[1]()
			require.Equal(t, int32(abi.KERN_SUCCESS), tc.destroy(name))
			require.Equal(t, []int{0, 2}, ran)
			for _, cancel := range cancels {
				cancel() // after the watch ran: nothing to do
			}
		})
	}
}
