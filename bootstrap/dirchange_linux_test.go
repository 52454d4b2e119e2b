//go:build linux

package bootstrap_test

import (
	"os"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/stretchr/testify/require"
)

// A process may serve one name in two namespace directories ($MACHPORT_BOOTSTRAP_DIR changed
// between the registrations): each directory has its own agent, and each look-up finds the
// registration of its directory.
func TestSameNameInTwoDirectories(t *testing.T) {
	first, err := bootstrap.Dir()
	require.NoError(t, err)
	name := uniqueName(t)
	portA := newPort(t)
	regA, err := bootstrap.Register(name, portA, nil)
	require.NoError(t, err)
	defer regA.Close()

	other := t.TempDir()
	require.NoError(t, os.Chmod(other, 0o700))
	t.Setenv(bootstrap.EnvDir, other)
	portB := newPort(t)
	regB, err := bootstrap.Register(name, portB, nil)
	require.NoError(t, err, "the name in a second directory")
	defer regB.Close()

	for dir, reg := range map[string]*bootstrap.Registration{other: regB, first: regA} {
		t.Setenv(bootstrap.EnvDir, dir)
		s, err := bootstrap.LookUp(ctxTimeout(t, 20*time.Second), name)
		require.NoError(t, err, dir)
		// A send right to a port of this task has the receive right's name, as in Mach.
		require.Equal(t, reg.Port().Name(), s.Name(), "the look-up in %s finds that directory's registration", dir)
		require.NoError(t, s.Close())
	}
}
