//go:build darwin

package peer

import (
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
	"golang.org/x/sys/unix"
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
	return darwinSystem{load: darwin.Load, loadSecurity: darwin.LoadSecurity, signal0: signal0}
}

// TokenForPID reads the audit token of the live process pid, with its pid version, through
// task_name_for_pid and task_info(TASK_AUDIT_TOKEN) (process_libsystem.go, which says what a
// recycled pid can and cannot do). xnu gives a process's task name port to root, the process
// itself, and callers of its effective and real user: for another user's process it fails
// wrapping fs.ErrPermission; for no such process, a zombie, or a pid outside pid_t's range,
// ErrProcessGone and fs.ErrNotExist. Builds for darwin; not run on macOS.
func TokenForPID(pid int) (mach.AuditToken, error) {
	if !darwin.PrivateBuild {
		return mach.AuditToken{}, errPublicOnly // task_name_for_pid is no public API
	}
	return darwinSystem{load: darwin.Load, loadSecurity: darwin.LoadSecurity, signal0: signal0}.tokenForPID(pid)
}

// signal0 is kill(pid, 0): ESRCH when no process has the pid.
func signal0(pid int) error { return unix.Kill(pid, 0) }
