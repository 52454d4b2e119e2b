package mach

import "testing"

// UseEmulation makes the rest of the test run over the Linux emulation directly, even in the
// process that runs the suite through the libSystem double.
func UseEmulation(t testing.TB) {
	t.Helper()
	old := sys
	sys = linuxKernel{}
	t.Cleanup(func() { sys = old })
}
