package peer

import (
	"errors"
	"testing"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// In a public-only build (process_darwin.go installs publicOnlySystem by a constant) predicates
// on the token itself still decide, while those that look the process up (executable, code
// signature) fail with a PrivateAPIError wrapping errors.ErrUnsupported.
func TestPublicOnlySystem(t *testing.T) {
	var tok mach.AuditToken
	tok[1], tok[5], tok[7] = 501, 4242, 7 // euid, pid, pid version

	r, err := newWith(publicOnlySystem{}, []Predicate{UID(501), PID(4242)})
	require.NoError(t, err)
	require.NoError(t, r.Check(tok), "predicates on the token need no look-up")
	tok[1] = 502
	require.Error(t, r.Check(tok))

	_, err = newWith(publicOnlySystem{}, []Predicate{CodeSigning(`identifier "com.example"`)})
	require.ErrorIs(t, err, errors.ErrUnsupported)
	var pe *PrivateAPIError
	require.ErrorAs(t, err, &pe)

	r, err = newWith(publicOnlySystem{}, []Predicate{Executable("/usr/bin/true")})
	require.NoError(t, err)
	err = r.Check(tok)
	require.ErrorIs(t, err, errors.ErrUnsupported)
	require.ErrorAs(t, err, &pe)
}
