//go:build linux

package bootstrap_test

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// A name holding a newline (launchd takes any C string; ValidateName allows it) is owned by its
// owner like any other: its record ("name\npid\nagent\n") is read from its end, and a record
// that does not parse never counts as free while an agent it may name lives. A child serves the
// name here; registering it again from this process must be refused with 1100.
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
