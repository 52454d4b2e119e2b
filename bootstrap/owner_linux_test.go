//go:build linux

package bootstrap_test

import (
	"os"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/stretchr/testify/require"
)

// The emulated namespace records who serves each name: Owner answers for a name, ServedBy for a
// process, and neither remembers a withdrawn name.
func TestOwnerAndServedBy(t *testing.T) {
	name := uniqueName(t)
	reg := register(t, name, nil)
	owner, known := bootstrap.Owner(name, 0)
	require.True(t, known)
	require.Equal(t, os.Getpid(), owner)
	_, known = bootstrap.Owner(name, os.Getpid())
	require.False(t, known, "no per-PID service of that name")
	served, err := bootstrap.ServedBy(os.Getpid())
	require.NoError(t, err)
	require.Contains(t, served, name)

	require.NoError(t, reg.Close())
	_, known = bootstrap.Owner(name, 0)
	require.False(t, known, "withdrawn")
	served, err = bootstrap.ServedBy(os.Getpid())
	require.NoError(t, err)
	require.NotContains(t, served, name)
}

// requireOwner requires that the emulated namespace's record of name say pid serves it.
func requireOwner(t *testing.T, name string, pid int) {
	t.Helper()
	owner, known := bootstrap.Owner(name, 0)
	require.True(t, known, "the name has an owner")
	require.Equal(t, pid, owner)
}
