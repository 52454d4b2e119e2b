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

// Review: a process that looks its own registered name up, and still holds that send right when
// it withdraws the name (Registration.Close destroys the port), is left with a dead name after
// it releases the right: on the emulation the look-up gives the name two send references
// (refs 2 where Mach gives 1), and one survives as a dead-name reference nobody holds. A server
// that closes while a Remote or LookUp of its own name is open (tests, machping selftest, a
// process that pairs with itself) leaks a name each time. Releasing the right first leaks
// nothing.
func TestReviewSelfLookUpOutlivingItsRegistration(t *testing.T) {
	names := func() int {
		n, err := mach.Names()
		require.NoError(t, err)
		return len(n)
	}
	before := names()
	port, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	name := testproc.UniqueName(t, "com.machport.review")
	reg, err := bootstrap.Register(name, port, bootstrap.Options{})
	require.NoError(t, err)
	s, err := bootstrap.LookUp(context.Background(), name)
	require.NoError(t, err)
	require.NoError(t, reg.Close())
	_ = s.Close()
	list, _ := mach.Names()
	require.Equal(t, before, names(), "names left: %v", list)
}
