package sandboxcheck

import (
	"errors"
	"fmt"
)

// EnvAppGroups names the environment variable that declares the emulated policy's application
// groups (comma-separated) where there is no real sandbox. Child processes inherit it, which is
// how a test puts a whole process tree in the same emulated sandbox.
const EnvAppGroups = "MACHPORT_APP_GROUPS"

// EntitlementAppGroups is the entitlement that lists a process's application groups.
const EntitlementAppGroups = "com.apple.security.application-groups"

// ErrNoSandboxSPI reports that this macOS lacks sandbox_check, the symbol the sandbox probe
// needs (it is private API).
var ErrNoSandboxSPI = errors.New("sandboxcheck: the sandbox check SPI is not available")

// Operation is a sandbox operation on a Mach service name, spelled as in sandbox profiles.
type Operation string

// The two operations a sandbox profile controls for Mach service names.
const (
	MachRegister Operation = "mach-register"
	MachLookUp   Operation = "mach-lookup"
)

// Scope says which namespace a name lives in (see AllowedIn).
type Scope int

const (
	// GlobalName is the per-user namespace that bootstrap_register2 and bootstrap_look_up use
	// (the profile's global-name filter).
	GlobalName Scope = iota
	// PerPIDName is a per-process service registered with BOOTSTRAP_PER_PID_SERVICE (the
	// profile's local-name filter).
	PerPIDName
)

// String returns "global" or "per-PID".
func (s Scope) String() string {
	if s == PerPIDName {
		return "per-PID"
	}
	return "global"
}

// Sandboxed reports whether this process runs in a sandbox. On macOS the sandbox answers; under
// the emulated policy, a process is sandboxed when it declares application groups.
func Sandboxed() (bool, error) { return platform.sandboxed() }

// ApplicationGroups returns this process's application-group identifiers: on macOS from its
// com.apple.security.application-groups entitlement, under the emulated policy from
// SetApplicationGroups or MACHPORT_APP_GROUPS. A process without groups gets nil.
func ApplicationGroups() ([]string, error) { return platform.groups() }

// GroupsSource says, for a person reading a diagnosis, where ApplicationGroups takes this
// process's groups from on this platform.
func GroupsSource() string {
	if _, ok := platform.(*appSupplied); ok {
		return groupsSourcePublicOnly
	}
	return groupsSource
}

// AllowedIn reports whether the sandbox lets this process perform op on the service name in
// scope. On macOS it asks sandbox_check without logging a violation; under the emulated policy a
// sandboxed process may use only names inside its application groups. An unsandboxed process is
// allowed everything.
func AllowedIn(op Operation, scope Scope, name string) (bool, error) { return allowed(op, scope, name) }

// Allowed is AllowedIn for a global service name.
func Allowed(op Operation, name string) (bool, error) { return allowed(op, GlobalName, name) }

// AllowedPerPID is AllowedIn for a per-process service name.
func AllowedPerPID(op Operation, name string) (bool, error) { return allowed(op, PerPIDName, name) }

func allowed(op Operation, scope Scope, name string) (bool, error) {
	if op != MachRegister && op != MachLookUp {
		return false, fmt.Errorf("sandboxcheck: unknown operation %q", op)
	}
	return platform.allowed(op, scope, name)
}

// Check returns nil when the name may be used for op, and otherwise the reason as a *NameError:
// the name is malformed, or this process is sandboxed with known application groups, the group
// rule governs op (on macOS it governs mach-register only; the emulated sandbox applies it to
// mach-lookup too) and the name lies outside the groups. It never asks launchd; it is what a
// caller runs before asking it, so that a refusal says which rule broke instead of a bare 1100.
func Check(op Operation, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if !platform.groupRule(op) {
		return nil
	}
	sandboxed, err := Sandboxed()
	if err == nil && sandboxed {
		var groups []string
		if groups, err = ApplicationGroups(); err == nil && len(groups) > 0 {
			return ValidateName(name, groups...)
		}
	}
	var bad *NameError
	if errors.As(err, &bad) {
		return err // a malformed declared group: the configuration is wrong, say so
	}
	return nil // otherwise launchd gives the answer, without a reason
}

// policy is the platform seam: the real sandbox on macOS, the emulated one elsewhere.
type policy interface {
	sandboxed() (bool, error)
	groups() ([]string, error)
	allowed(op Operation, scope Scope, name string) (bool, error)
	// groupRule reports whether the application-group rule decides op here.
	groupRule(op Operation) bool
}
