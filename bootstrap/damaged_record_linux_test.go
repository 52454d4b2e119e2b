//go:build linux

package bootstrap_test

import (
	"os"
	"strings"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/stretchr/testify/require"
)

// A record that does not parse (damaged: cut short, or overwritten) is not a free name while
// the agent it may belong to runs: registering the name of a live owner elsewhere is refused
// with 1100 (the agent is found in the record's lines, or at the end of the name's link).
func TestDamagedRecordOfALiveOwnerKeepsTheName(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(record string) string
	}{
		{name: "cut before its last newline", damage: func(r string) string { return strings.TrimSuffix(r, "\n") }},
		{name: "overwritten", damage: func(string) string { return "damaged\n" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := uniqueName(t)
			c := startChild(t, "registerhold", name)
			require.Equal(t, "ready", c.Line(t))
			_, record, err := bootstrap.NamePaths(name, 0)
			require.NoError(t, err)
			b, err := os.ReadFile(record)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(record, []byte(tc.damage(string(b))), 0o600))
			reg, outcome, err := tryRegister(name)
			require.NoError(t, err)
			if reg != nil {
				defer reg.Close()
			}
			require.Equal(t, "code 1100", outcome, "registering a name another live process serves")
		})
	}
}
