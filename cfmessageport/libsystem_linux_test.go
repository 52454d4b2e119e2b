//go:build linux

package cfmessageport_test

import (
	"testing"

	"github.com/machport/machport/internal/darwin/libsystemdouble"
)

// With MACHPORT_TEST_LIBSYSTEM_DOUBLE=1 this test binary runs the Darwin logic of mach (the
// kernel), bootstrap (launchd's namespace) and sandboxcheck (the sandbox and entitlements) over
// the libSystem double, whose launchd is bootstrap's Linux namespace. The children of
// cross-process tests inherit the variable, so every peer runs the Darwin logic too.
func init() { libsystemdouble.UseDarwinLogicIfAsked() }

// TestSuiteThroughLibSystemDouble runs every other test of this package a second time through
// the Darwin logic over the libSystem double: the code a Mac runs below the CFMessagePort
// protocol is executed on every Linux test run.
func TestSuiteThroughLibSystemDouble(t *testing.T) {
	libsystemdouble.RerunSuite(t)
}
