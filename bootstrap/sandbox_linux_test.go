package bootstrap_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

func startSandboxedChild(t *testing.T, role, name string) *child {
	return startChild(t, role, name, sandboxcheck.EnvAppGroups+"="+testGroup)
}

// Under the emulated sandbox a name outside the groups is refused for register and look-up
// with a typed 1100 that says which rule broke, before the namespace is touched; a prefixed
// name works; RegisterUnique puts the group in front.
func TestEmulatedSandboxRefusesNamesOutsideGroups(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	t.Setenv(sandboxcheck.EnvAppGroups, testGroup)
	dir, err := bootstrap.Dir()
	require.NoError(t, err)
	before, err := os.ReadDir(dir)
	require.NoError(t, err)

	outside := uniqueName(t)
	port := newPort(t)
	defer port.Close()
	_, err = bootstrap.Register(outside, port, &bootstrap.Options{})
	require.ErrorIs(t, err, bootstrap.ErrNotPrivileged)
	require.ErrorIs(t, err, sandboxcheck.ErrOutsideGroups)
	var ne *sandboxcheck.NameError
	require.ErrorAs(t, err, &ne)
	require.Equal(t, outside, ne.Name)
	require.True(t, strings.HasPrefix(ne.Example, testGroup+"."), ne.Example)
	require.Contains(t, err.Error(), "1100")
	require.Contains(t, err.Error(), testGroup)
	_, err = bootstrap.Register(outside, port, &bootstrap.Options{PerPID: true})
	require.ErrorIs(t, err, bootstrap.ErrNotPrivileged)
	_, err = bootstrap.LookUp(ctx, outside)
	require.ErrorIs(t, err, bootstrap.ErrNotPrivileged)
	after, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, after, len(before), "a refused name never reaches the namespace")

	inside := register(t, testGroup+"."+uniqueName(t), &bootstrap.Options{})
	s, err := bootstrap.LookUp(ctx, inside.Name())
	require.NoError(t, err)
	require.NoError(t, s.Close())

	unique, err := bootstrap.RegisterUnique("worker", newPort(t), &bootstrap.Options{})
	require.NoError(t, err)
	defer unique.Close()
	require.True(t, strings.HasPrefix(unique.Name(), testGroup+".worker."), unique.Name())

	// A malformed declared group is a configuration error, said as such, before a registration
	// and, where the emulated sandbox applies the group rule to look-ups, before a look-up (on
	// macOS, and so through the Darwin logic, the rule governs mach-register only).
	t.Setenv(sandboxcheck.EnvAppGroups, "not-a-group")
	_, err = bootstrap.Register(inside.Name()+".again", port, &bootstrap.Options{})
	require.ErrorIs(t, err, sandboxcheck.ErrBadGroup)
	require.False(t, errors.Is(err, bootstrap.ErrNotPrivileged))
	if !throughDouble() {
		_, err = bootstrap.LookUp(ctx, inside.Name())
		require.ErrorIs(t, err, sandboxcheck.ErrBadGroup)
		require.False(t, errors.Is(err, bootstrap.ErrNotPrivileged))
	}
}
