//go:build linux

package mach

import (
	"os"
	"sync"
	"testing"

	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/internal/rerun"
)

// libSystemDoubleEnv, set to 1, makes this test binary run with the Darwin kernel
// (kernel_libsystem.go) over the libSystem double instead of the Linux emulation's adapter. It
// is inherited by the peers of cross-process tests, so both sides run the Darwin logic.
// TestSuiteThroughLibSystemDouble sets it for a second run of the whole suite.
const libSystemDoubleEnv = libsystemdouble.Env

func init() {
	if os.Getenv(libSystemDoubleEnv) == "1" {
		libsystemdouble.Install()
		sys = newDarwinKernel(libsystemdouble.TaskSelf())
	}
}

// throughDouble reports whether this process runs the Darwin logic over the double.
func throughDouble() bool { _, ok := sys.(*darwinKernel); return ok }

// TestSuiteThroughLibSystemDouble runs every other test of this package a second time, in a
// child process that runs the Darwin logic over the libSystem double: the code a Mac runs is
// executed on every Linux test run. Under coverage the child writes its counters where this
// process writes its own (-test.gocoverdir), so one profile holds both runs.
func TestSuiteThroughLibSystemDouble(t *testing.T) {
	if throughDouble() {
		t.Fatal("already running through the double: the child must skip this test")
	}
	rerun.Suite(t, "TestSuiteThroughLibSystemDouble", libSystemDoubleEnv+"=1")
}

var (
	doubleOnce   sync.Once
	doubleKernel *darwinKernel
)

// UseLibSystemDouble makes the rest of the test run the Darwin logic over the libSystem double
// (one darwinKernel per process, so its wake-up ports are made once), whatever this process
// runs otherwise, and disarms the double's faults at the end. Call it before checkLeaks.
func UseLibSystemDouble(t testing.TB) {
	t.Helper()
	if k, ok := sys.(*darwinKernel); ok {
		t.Cleanup(libsystemdouble.Reset)
		doubleOnce.Do(func() { doubleKernel = k })
		return
	}
	doubleOnce.Do(func() {
		libsystemdouble.Install()
		doubleKernel = newDarwinKernel(libsystemdouble.TaskSelf())
	})
	old := sys
	sys = doubleKernel
	t.Cleanup(func() {
		libsystemdouble.Reset()
		sys = old
	})
}

// WaitingReceives is how many cancellable receives of the Darwin logic wait on name: the tests
// use it to know a receive has put the port in its private set.
func WaitingReceives(name Name) int {
	k, ok := sys.(*darwinKernel)
	if !ok {
		return 0
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.waiting[name])
}
