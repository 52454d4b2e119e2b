package peer

import (
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
)

// PrivateAPIError is what a look-up by audit token (a process's path, version or code signature)
// fails with in a public-API-only build (iOS without -tags machport_private, macOS with -tags
// machport_publiconly): libproc and csops_audittoken are not public API, and iOS declares no
// SecCode. Predicates on the token itself (pid, uid, gid) work. It wraps errors.ErrUnsupported.
type PrivateAPIError = darwin.PrivateAPIError

// publicOnlySystem is the system of a public-only build; process_darwin.go installs it by a
// constant, so that process_libsystem.go, which spells the private names, is not linked.
type publicOnlySystem struct{}

var errPublicOnly = &darwin.PrivateAPIError{Op: "peer: looking a process up by its audit token"}

func (publicOnlySystem) version(mach.AuditToken) (uint64, error) { return 0, errPublicOnly }

func (publicOnlySystem) lookup(mach.AuditToken, uint64, bool) (*process, error) {
	return nil, errPublicOnly
}

func (publicOnlySystem) parseCode(string) (*codeRequirement, error) { return nil, errPublicOnly }

func (publicOnlySystem) close() {}
