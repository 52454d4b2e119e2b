//go:build linux

package mach

import "github.com/machport/machport/internal/darwin/libsystemdouble"

// The seam for machport's own tests: when a test binary calls libsystemdouble.UseDarwinLogic
// (which only code inside this module can: the package is internal), this package runs the Darwin
// kernel (kernel_libsystem.go) over the libSystem double instead of the emulation's adapter, so
// that the suites of the packages above it (bootstrap, cfmessageport) run through the code a Mac
// runs. Nothing else ever runs it.
func init() {
	libsystemdouble.OnUse(func() { sys = newDarwinKernel(libsystemdouble.TaskSelf()) })
}
