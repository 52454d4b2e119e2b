//go:build linux

package sandboxcheck

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
)

var platform policy = emulated{}

const groupsSource = "SetApplicationGroups, else " + EnvAppGroups +
	" (comma-separated, each group.<reverse-dns> or <TEAMID>.<reverse-dns>)"

// The groups declared through SetApplicationGroups; they take precedence over the environment.
var declared struct {
	sync.Mutex
	set    bool
	groups []string
}

// SetApplicationGroups puts this process in the emulated sandbox with the given application
// groups, overriding MACHPORT_APP_GROUPS. Each group must pass ValidateGroup. It affects this
// process only; set MACHPORT_APP_GROUPS for children. On macOS the entitlements decide and it
// returns an error wrapping errors.ErrUnsupported.
func SetApplicationGroups(groups ...string) error {
	if p, ok := platform.(*appSupplied); ok {
		return p.setGroups(groups) // a test of the public-only mode (policy_publiconly.go)
	}
	if _, ok := platform.(emulated); !ok {
		// machport's tests run the Darwin logic here (policy_libsystem_linux.go): as on macOS,
		// the code signature decides.
		return fmt.Errorf("sandboxcheck: application groups come from the entitlements of the Darwin logic's process: %w", errors.ErrUnsupported)
	}
	if len(groups) == 0 {
		return fmt.Errorf("sandboxcheck: SetApplicationGroups needs at least one group (ResetApplicationGroups leaves the sandbox)")
	}
	for _, g := range groups {
		if err := ValidateGroup(g); err != nil {
			return err
		}
	}
	declared.Lock()
	defer declared.Unlock()
	declared.set, declared.groups = true, slices.Clone(groups)
	return nil
}

// ResetApplicationGroups undoes SetApplicationGroups: the environment decides again.
func ResetApplicationGroups() {
	if p, ok := platform.(*appSupplied); ok {
		p.reset()
	}
	declared.Lock()
	defer declared.Unlock()
	declared.set, declared.groups = false, nil
}

type emulated struct{}

func (emulated) groups() ([]string, error) {
	declared.Lock()
	if declared.set {
		defer declared.Unlock()
		return slices.Clone(declared.groups), nil
	}
	declared.Unlock()
	groups, err := parseGroupList(os.Getenv(EnvAppGroups))
	if err != nil {
		return nil, fmt.Errorf("sandboxcheck: %s: %w", EnvAppGroups, err)
	}
	return groups, nil
}

func (e emulated) sandboxed() (bool, error) {
	groups, err := e.groups()
	return len(groups) > 0, err
}

// groupRule: the emulated sandbox applies the group rule to look-ups as well.
func (emulated) groupRule(Operation) bool { return true }

func (e emulated) allowed(_ Operation, _ Scope, name string) (bool, error) {
	if err := ValidateName(name); err != nil {
		return false, err
	}
	groups, err := e.groups()
	if err != nil || len(groups) == 0 {
		return err == nil, err
	}
	return ValidateName(name, groups...) == nil, nil
}

// parseGroupList splits a comma-separated list of group identifiers, as MACHPORT_APP_GROUPS
// holds them, and checks each.
func parseGroupList(list string) ([]string, error) {
	var groups []string
	for _, g := range strings.Split(list, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		if err := ValidateGroup(g); err != nil {
			return nil, err
		}
		groups = append(groups, g)
	}
	return groups, nil
}
