//go:build linux

package bootstrap_test

import (
	"errors"
	"os"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/leakcheck"
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

// A name this process withdraws on one goroutine while another registers it again is, for the
// second, either still served here (1103) or free: never another process's (1100), which a record
// still on disk after the name left this process's table would make it.
func TestRegisterWhileWithdrawing(t *testing.T) {
	leakcheck.Check(t)
	name := uniqueName(t)
	register(t, name+".other", nil) // keeps the process's agent running between the names
	for range 300 {
		first, err := bootstrap.Register(name, newPort(t), nil)
		require.NoError(t, err)
		closed := make(chan struct{})
		go func() { defer close(closed); first.Close() }()
		port := newPort(t)
		var reg *bootstrap.Registration
		for {
			reg, err = bootstrap.Register(name, port, nil)
			var be *bootstrap.Error
			if errors.As(err, &be) && be.Code == bootstrap.ErrServiceActive {
				continue
			}
			break
		}
		<-closed
		if err != nil {
			port.Close()
		}
		require.NoError(t, err)
		require.NoError(t, reg.Close())
	}
}
