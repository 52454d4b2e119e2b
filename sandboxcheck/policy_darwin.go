//go:build darwin

package sandboxcheck

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/machport/machport/internal/darwin"
)

// The darwin-only loader: the real sandbox (policy_libsystem.go) over libSystem, Security and
// CoreFoundation, bound at the first call. A public-only build (iOS without -tags
// machport_private, macOS with -tags machport_publiconly) gets appSupplied instead; the choice is
// a constant, so the compiler drops the live queries and the linker their private names.
var platform policy = darwinPolicy()

func darwinPolicy() policy {
	if !darwin.PrivateBuild {
		return &appSupplied{}
	}
	return darwinSandbox{arch: runtime.GOARCH, load: darwin.Load, loadSecurity: darwin.LoadSecurity,
		read32: darwin.ReadUint32}
}

const groupsSource = "the " + EntitlementAppGroups + " entitlement of this process's code signature"

// SetApplicationGroups gives a public-API-only build (the default on iOS) this app's application
// groups, which it cannot read from its code signature: pass the values of the
// com.apple.security.application-groups entitlement the app and its extensions are signed with.
// Each group must pass ValidateGroup, and on iOS start with "group.": Apple's App Groups
// entitlement takes team-ID groups ("TEAMID.name") on macOS only. With the private API (the default on macOS) the
// entitlements decide and it returns an error wrapping errors.ErrUnsupported.
func SetApplicationGroups(groups ...string) error {
	if p, ok := platform.(*appSupplied); ok {
		return p.setGroups(groups)
	}
	return fmt.Errorf("sandboxcheck: application groups come from the entitlements on macOS: %w", errors.ErrUnsupported)
}

// ResetApplicationGroups forgets the groups SetApplicationGroups gave; with the private API it
// does nothing.
func ResetApplicationGroups() {
	if p, ok := platform.(*appSupplied); ok {
		p.reset()
	}
}
