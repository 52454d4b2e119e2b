//go:build linux

package bootstrap_test

import (
	"testing"

	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/internal/rerun"
)

// With MACHPORT_TEST_LIBSYSTEM_DOUBLE=1 this test binary runs the Darwin logic of mach, bootstrap
// and sandboxcheck over the libSystem double, whose launchd is the Linux namespace; the children
// of cross-process tests inherit the variable, so both sides do.
func init() { libsystemdouble.UseDarwinLogicIfAsked() }

// throughDouble reports whether this process runs the Darwin logic over the double.
func throughDouble() bool { return libsystemdouble.InUse() }

// TestSuiteThroughLibSystemDouble runs every other test of this package a second time through the
// Darwin logic (namespace_libsystem.go, sandboxcheck's policy_libsystem.go, mach's
// kernel_libsystem.go) over the libSystem double: the code a Mac runs is executed on every Linux
// test run.
func TestSuiteThroughLibSystemDouble(t *testing.T) {
	if throughDouble() {
		t.Fatal("already running through the double: the child must skip this test")
	}
	rerun.Suite(t, "TestSuiteThroughLibSystemDouble", libsystemdouble.Env+"=1")
}
