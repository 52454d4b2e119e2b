package peer

import "github.com/machport/machport/mach"

// parseOnlySystem builds requirements of any predicate, code signing included, and looks no
// process up: for tests of the syntax alone.
type parseOnlySystem struct{}

func (parseOnlySystem) version(mach.AuditToken) (uint64, error) { return 0, ErrProcessGone }
func (parseOnlySystem) lookup(mach.AuditToken, uint64, bool) (*process, error) {
	return nil, ErrProcessGone
}
func (parseOnlySystem) parseCode(string) (*codeRequirement, error) { return &codeRequirement{}, nil }
func (parseOnlySystem) close()                                     {}
