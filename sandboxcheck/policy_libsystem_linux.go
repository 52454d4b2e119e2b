//go:build linux

package sandboxcheck

import (
	"runtime"

	"github.com/machport/machport/internal/darwin/libsystemdouble"
)

// The seam for machport's own tests: when a test binary calls libsystemdouble.UseDarwinLogic
// (which only code inside this module can), this package asks the real sandbox's Darwin logic
// (policy_libsystem.go) over the libSystem double instead of the emulated policy. The double's
// process is sandboxed with the groups of MACHPORT_APP_GROUPS, its code signature, and, as on
// macOS, SetApplicationGroups then fails with errors.ErrUnsupported. Nothing else ever runs it.
func init() {
	libsystemdouble.OnUse(func() { platform = doubleSandbox(runtime.GOARCH) })
}

// doubleSandbox is the Darwin logic over the double, calling the sandbox_check binding of arch.
func doubleSandbox(arch string) darwinSandbox {
	return darwinSandbox{arch: arch, load: func() error { return nil }, loadSecurity: func() error { return nil },
		read32: libsystemdouble.ReadUint32}
}
