package sandboxcheck

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/machport/machport/internal/darwin"
)

// PrivateAPIError is what Sandboxed, ApplicationGroups and AllowedIn fail with in a
// public-API-only build (iOS without -tags machport_private, macOS with -tags
// machport_publiconly) when they would have to ask the sandbox or read the code signature's
// entitlements: sandbox_check is private API and SecTask is not declared on iOS. It wraps
// errors.ErrUnsupported. ValidateName works in every build; an app supplies its groups with
// SetApplicationGroups.
type PrivateAPIError = darwin.PrivateAPIError

// appSupplied is the policy of a public-only build: no live query, only the application groups
// the app supplied (SetApplicationGroups), read from its own entitlements (an iOS app knows
// them: it declared them). An app that supplied groups is sandboxed (every iOS app is, and a Mac
// App Store app must be), and, as in the App Sandbox, the group rule governs mach-register.
// policy_darwin.go installs it by a constant, so that the live queries' logic
// (policy_libsystem.go), which spells the private names, is not linked.
type appSupplied struct {
	mu   sync.Mutex
	set  bool
	list []string
}

func (p *appSupplied) setGroups(groups []string) error {
	if len(groups) == 0 {
		return fmt.Errorf("sandboxcheck: SetApplicationGroups needs at least one group (ResetApplicationGroups forgets them)")
	}
	os := darwin.LoaderOS()
	for _, g := range groups {
		if err := ValidateGroup(g); err != nil {
			return err
		}
		if err := groupOn(os, g); err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set, p.list = true, slices.Clone(groups)
	return nil
}

// groupOn refuses a well-formed group that os does not allow: Apple's App Groups entitlement
// takes "<TEAMID>.<name>" on macOS only; on iOS every group is "group.<name>".
func groupOn(os darwin.OS, group string) error {
	if os == darwin.IOS && !strings.HasPrefix(group, groupPrefix) {
		return &NameError{Name: group, Rule: ErrBadGroup, Group: group,
			Detail: `on iOS an application group starts with "group."; a team-ID group ("TEAMID.name") is macOS only`}
	}
	return nil
}

func (p *appSupplied) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set, p.list = false, nil
}

func (p *appSupplied) supplied() ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.list), p.set
}

func (p *appSupplied) sandboxed() (bool, error) {
	if _, ok := p.supplied(); ok {
		return true, nil
	}
	return false, &darwin.PrivateAPIError{Op: "sandboxcheck.Sandboxed (without SetApplicationGroups)"}
}

func (p *appSupplied) groups() ([]string, error) {
	if groups, ok := p.supplied(); ok {
		return groups, nil
	}
	return nil, &darwin.PrivateAPIError{Op: "sandboxcheck.ApplicationGroups (reading the entitlements; supply them with SetApplicationGroups)"}
}

func (p *appSupplied) allowed(Operation, Scope, string) (bool, error) {
	return false, &darwin.PrivateAPIError{Op: "sandboxcheck.AllowedIn (asking the sandbox)"}
}

func (*appSupplied) groupRule(op Operation) bool { return op == MachRegister }

// groupsSourcePublicOnly is GroupsSource in a public-only build.
const groupsSourcePublicOnly = "SetApplicationGroups, which the app calls with the " + EntitlementAppGroups +
	" entitlement it was signed with (a public-API-only build cannot read its code signature)"
