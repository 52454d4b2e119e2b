//go:build darwin

package peer

import (
	"errors"
	"fmt"

	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
)

// The darwin-only loader: the look-ups of process_libsystem.go over libSystem, Security and
// CoreFoundation, bound at the first call.

// newHostSystem looks processes up through the kernel and Security.framework, by audit token.
// A public-only build gets publicOnlySystem; the choice is a constant, so the private names of
// process_libsystem.go are not linked.
func newHostSystem() system {
	if !darwin.PrivateBuild {
		return publicOnlySystem{}
	}
	return darwinSystem{load: darwin.Load, loadSecurity: darwin.LoadSecurity}
}

// TokenForPID would make the audit token of process pid. On macOS a process's token comes from
// task_info(TASK_AUDIT_TOKEN) on its task port, which task_name_for_pid gives only to root or the
// same user under conditions machport does not model, and which machport does not bind: rather
// than build a token without its pid version (which every look-up by token needs, and which
// Check's cache keys on), it fails with errors.ErrUnsupported. Not run on macOS.
func TokenForPID(pid int) (mach.AuditToken, error) {
	return mach.AuditToken{}, fmt.Errorf("peer: identity of pid %d from outside its messages: %w", pid, errors.ErrUnsupported)
}
