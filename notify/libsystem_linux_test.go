//go:build linux

package notify_test

import (
	"os"
	"testing"

	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/internal/rerun"
)

// With MACHPORT_TEST_LIBSYSTEM_DOUBLE=1 this test binary runs notify's Darwin logic
// (notify_libsystem.go) and mach's over the libSystem double, whose notifyd is the emulated
// center; children of cross-process tests inherit the variable.
func init() {
	if os.Getenv(libsystemdouble.Env) == "1" {
		libsystemdouble.UseDarwinLogic()
	}
}

// TestSuiteThroughLibSystemDouble runs every other test of this package a second time through
// the Darwin logic over the libSystem double: the code a Mac runs is executed on Linux.
func TestSuiteThroughLibSystemDouble(t *testing.T) {
	if libsystemdouble.InUse() {
		t.Fatal("already running through the double: the child must skip this test")
	}
	rerun.Suite(t, "TestSuiteThroughLibSystemDouble", libsystemdouble.Env+"=1")
}
