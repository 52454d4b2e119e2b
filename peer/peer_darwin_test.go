//go:build darwin && !ios

package peer

import (
	"os"
	"testing"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A code-signing requirement that does not parse is an error at construction; one that parses
// is checked against this process's own token (a pid and version from the kernel are needed:
// csops_audittoken and Security check the whole token, so a token made up here fails as gone).
func TestCodeSigningRequirementParses(t *testing.T) {
	_, err := New(CodeSigning(`identifier "com.example" and and`))
	require.ErrorIs(t, err, ErrInvalidRequirement)
	r, err := New(CodeSigning(`identifier "com.example.nobody"`))
	require.NoError(t, err)
	made := mach.AuditToken{uint32(os.Getuid()), uint32(os.Geteuid()), 0, 0, 0, uint32(os.Getpid()), 0, 0}
	require.Error(t, r.Check(made))
}
