//go:build linux

package bootstrap_test

import (
	"os"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/stretchr/testify/require"
)

// A name registered after $MACHPORT_BOOTSTRAP_DIR changed is served by an agent in the new
// directory: agents are kept per directory. (An agent of the first directory, reused, left the
// name's link pointing at a socket that directory does not have, so the name could not be looked
// up, and its record named an agent whose lock was elsewhere: any process could take it.)
func TestRegisterAfterTheDirectoryChanges(t *testing.T) {
	first := register(t, uniqueName(t), nil) // starts this process's agent here
	_ = first
	other := t.TempDir()
	require.NoError(t, os.Chmod(other, 0o700))
	t.Setenv(bootstrap.EnvDir, other)
	name := uniqueName(t)
	reg := register(t, name, nil)
	defer reg.Close()
	s, err := bootstrap.LookUp(ctxTimeout(t, 20*time.Second), name)
	require.NoError(t, err, "a name registered in %s", other)
	s.Close()
}
