//go:build linux

package peer

import (
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/mach"
	"golang.org/x/sys/unix"
)

// The seam for machport's own tests: when a test binary calls libsystemdouble.UseDarwinLogic
// (which only code inside this module can), Requirements look processes up, and TokenForPID
// reads a token, through the macOS logic (process_libsystem.go) over the libSystem double, as
// mach and sandboxcheck switch. machping's tests run check-peer so (a test binary re-executed as
// machping). Nothing else ever runs it; mach links the double into Linux programs already.
func init() {
	libsystemdouble.OnUse(func() {
		sys := doubleHostSystem()
		newHostSystem = func() system { return sys }
		tokenForPID = func(pid int) (mach.AuditToken, error) { return sys.tokenForPID(pid) }
	})
}

// doubleHostSystem is the macOS logic with nothing to load (the double is installed), and the
// real kill(pid, 0).
func doubleHostSystem() darwinSystem {
	nop := func() error { return nil }
	return darwinSystem{load: nop, loadSecurity: nop, signal0: func(pid int) error { return unix.Kill(pid, 0) }}
}
