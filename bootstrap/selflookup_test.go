//go:build linux

package bootstrap_test

import (
	"context"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A process that looks its own registered name up, and still holds that send right when it
// withdraws the name (Registration.Close destroys the port), leaves no dead name behind once it
// releases the right. The emulated namespace holds a send right of its own under the same name,
// with a dead-name request; the request must be canceled before its notification port goes, or
// the port's death would add a dead-name reference that nobody can release.
func TestSelfLookUpOutlivingItsRegistration(t *testing.T) {
	names := func() int {
		n, err := mach.Names()
		require.NoError(t, err)
		return len(n)
	}
	before := names()
	port, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	name := testproc.UniqueName(t, "com.machport.review")
	reg, err := bootstrap.Register(name, port, &bootstrap.Options{})
	require.NoError(t, err)
	s, err := bootstrap.LookUp(context.Background(), name)
	require.NoError(t, err)
	require.NoError(t, reg.Close())
	_ = s.Close()
	list, _ := mach.Names()
	require.Equal(t, before, names(), "names left: %v", list)
}
