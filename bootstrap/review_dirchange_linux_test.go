//go:build linux

package bootstrap_test

// Adversarial review of the agent format (branch names): each test in review_*_linux_test.go
// fails on that branch.

import (
	"os"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/stretchr/testify/require"
)

// FINDING (low): the agent is started in the directory of the first registration and reused
// for every later name, whatever the directory is then: after $MACHPORT_BOOTSTRAP_DIR changes,
// Register writes the link "agents/<id>.sock" relative to the new directory, where no agent
// runs, so the name it accepted cannot be looked up (and its record names an agent whose lock is
// not in that directory: any process may take the name). The earlier format kept everything of
// a name in its own directory.
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
