//go:build darwin && !ios

package sandboxcheck

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/machport/machport/internal/darwin"
)

// The darwin-only loader: the real sandbox (policy_libsystem.go) over libSystem, Security and
// CoreFoundation, bound at the first call.
var platform policy = darwinSandbox{arch: runtime.GOARCH, load: darwin.Load, loadSecurity: darwin.LoadSecurity,
	read32: darwin.ReadUint32}

const groupsSource = "the " + EntitlementAppGroups + " entitlement of this process's code signature"

// SetApplicationGroups is for the emulated policy; on macOS the process's entitlements decide,
// so it returns an error wrapping errors.ErrUnsupported.
func SetApplicationGroups(groups ...string) error {
	return fmt.Errorf("sandboxcheck: application groups come from the entitlements on macOS: %w", errors.ErrUnsupported)
}

// ResetApplicationGroups does nothing on macOS.
func ResetApplicationGroups() {}
