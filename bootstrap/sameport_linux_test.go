//go:build linux

package bootstrap_test

import (
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/stretchr/testify/require"
)

// One port registered under two names (launchd keeps a service per name) loses both names when
// it dies, and nothing of either stays open. Through the libSystem double each name is withdrawn
// by a watch of the port's receive right; before watches of one right added up, the second
// replaced the first, and the first name kept its socket and lock for ever.
func TestOnePortTwoNames(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	port := newPort(t)
	base := uniqueName(t)
	names := []string{base + ".a", base + ".b"}
	var regs []*bootstrap.Registration
	for _, name := range names {
		reg, err := bootstrap.Register(name, port, nil)
		require.NoError(t, err)
		regs = append(regs, reg)
	}
	for _, name := range names {
		s, err := bootstrap.LookUp(ctx, name)
		require.NoError(t, err, name)
		require.NoError(t, s.Close())
	}
	for _, reg := range regs {
		require.NoError(t, reg.Close())
	}
	for _, name := range names {
		_, err := bootstrap.LookUp(ctx, name)
		require.ErrorIs(t, err, bootstrap.ErrUnknownService, name)
	}
}
