//go:build linux

package libsystemdouble

import (
	"os"
	"testing"

	"github.com/machport/machport/internal/rerun"
)

// UseDarwinLogicIfAsked calls UseDarwinLogic when Env is "1" in this process's environment: a
// test binary's init calls it, so that the child RerunSuite starts (and the children of its
// cross-process tests, which inherit the variable) run the Darwin logic.
func UseDarwinLogicIfAsked() {
	if os.Getenv(Env) == "1" {
		UseDarwinLogic()
	}
}

// RerunSuite runs every other test of the calling test binary a second time, in a child that
// runs the Darwin logic over the double (Env=1), and fails t when the child fails: the code a Mac
// runs is executed on every Linux test run. The calling test must be named
// TestSuiteThroughLibSystemDouble (the child skips it), and the binary's init must call
// UseDarwinLogicIfAsked.
func RerunSuite(t *testing.T) {
	t.Helper()
	if InUse() {
		t.Fatal("already running through the double: the child must skip this test")
	}
	rerun.Suite(t, "TestSuiteThroughLibSystemDouble", Env+"=1")
}
