//go:build linux

package notify_test

import (
	"testing"

	"github.com/machport/machport/internal/darwin/libsystemdouble"
)

// With MACHPORT_TEST_LIBSYSTEM_DOUBLE=1 this test binary runs notify's Darwin logic
// (notify_libsystem.go) and mach's over the libSystem double, whose notifyd is the emulated
// center; children of cross-process tests inherit the variable.
func init() { libsystemdouble.UseDarwinLogicIfAsked() }

// TestSuiteThroughLibSystemDouble runs every other test of this package a second time through
// the Darwin logic over the libSystem double: the code a Mac runs is executed on Linux.
func TestSuiteThroughLibSystemDouble(t *testing.T) {
	libsystemdouble.RerunSuite(t)
}
