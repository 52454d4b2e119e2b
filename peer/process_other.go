//go:build !darwin && !linux

package peer

import (
	"errors"
	"fmt"

	"github.com/machport/machport/mach"
)

// newHostSystem cannot look processes up here: predicates on the token (pid, uid, gid) work, the
// others fail with errors.ErrUnsupported.
func newHostSystem() system { return noSystem{} }

type noSystem struct{}

var errNoLookUp = fmt.Errorf("peer: no process look-up on this system: %w", errors.ErrUnsupported)

func (noSystem) version(mach.AuditToken) (uint64, error) { return 0, errNoLookUp }

func (noSystem) lookup(mach.AuditToken, uint64, bool) (*process, error) { return nil, errNoLookUp }

func (noSystem) parseCode(string) (*codeRequirement, error) {
	return nil, fmt.Errorf("peer: code-signing requirements exist only on macOS: %w", errors.ErrUnsupported)
}

func (noSystem) close() {}

// TokenForPID cannot read another process's identity here: it fails with errors.ErrUnsupported.
func TokenForPID(pid int) (mach.AuditToken, error) {
	return mach.AuditToken{}, fmt.Errorf("peer: identity of pid %d: %w", pid, errNoLookUp)
}
