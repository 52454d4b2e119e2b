//go:build linux

package bootstrap_test

// Adversarial review of the agent format (branch names): each test in review_*_linux_test.go
// fails on that branch.

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// FINDING (medium: two live owners of one name, for names holding a newline): the owner record is "name\npid\nagent\n" and parseOwnerRecord wants exactly four
// lines, so the record of a name holding a newline (launchd takes any C string; ValidateName
// allows it) never parses, and a record that does not parse counts as a dead owner's, "killed
// while it wrote it" (nameFree). Another process registering the same name while its owner lives
// therefore removes the record and the link and takes the name: two live owners. The earlier
// format owned a name by its flock alone, whatever the record said. A child serves the name
// here; registering it again from this process must be refused with 1100.
func TestNameWithANewlineIsOwnedByItsOwner(t *testing.T) {
	name := uniqueName(t) + ".line\nbreak"
	c := startChild(t, "registerhold", name)
	require.Equal(t, "ready", c.Line(t))
	reg, outcome, err := tryRegister(name)
	require.NoError(t, err)
	if reg != nil {
		defer reg.Close()
	}
	require.Equal(t, "code 1100", outcome, "registering a name another live process serves")
}
