//go:build linux

package bootstrap_test

import (
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A namespace directory too long for a socket address (sun_path's 107 bytes) still works: the
// agent listens, and look-ups connect, through a descriptor of the directory. The lengths span
// the one where a global name's link no longer fits (68), the one where the agent's own socket
// no longer fits (about 75), and far beyond; a per-PID name's link is longer still. Another
// process registers, so that the look-up is a stranger's.
func TestLongNamespaceDirectories(t *testing.T) {
	for _, tc := range []struct {
		name   string
		length int
		perPID bool
	}{
		{name: "67 bytes", length: 67},
		{name: "68 bytes", length: 68},
		{name: "80 bytes", length: 80},
		{name: "80 bytes, per-PID", length: 80, perPID: true},
		{name: "250 bytes", length: 250},
		{name: "250 bytes, per-PID", length: 250, perPID: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := dirOfLength(t, tc.length)
			t.Setenv(bootstrap.EnvDir, dir)
			name := uniqueName(t)
			env := []string{bootstrap.EnvDir + "=" + dir}
			if tc.perPID {
				env = append(env, "PER_PID=1")
			}
			c := startChild(t, "serve", name, env...)
			require.Equal(t, "ready", c.Line(t))
			ctx := ctxTimeout(t, 20*time.Second)
			var s *mach.SendRight
			var err error
			if tc.perPID {
				s, err = bootstrap.LookUpPID(ctx, name, c.Cmd.Process.Pid)
			} else {
				s, err = bootstrap.LookUp(ctx, name)
			}
			require.NoError(t, err)
			require.NoError(t, s.Close())
		})
	}
}
