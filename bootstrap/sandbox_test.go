//go:build linux || (darwin && !ios)

package bootstrap_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// testGroup is the application group the sandboxed children hold.
const testGroup = "group.com.machport.test"

// A child in a sandbox that allows mach-register only inside testGroup gets 1100 for any other
// name and may register a prefixed one; what sandboxcheck.Allowed says agrees with what
// registering does. On Linux the sandbox is the emulated one (MACHPORT_APP_GROUPS); on macOS the
// child runs under sandbox-exec with such a profile.
func TestSandboxedChildRegisters(t *testing.T) {
	cases := []struct {
		name    string
		service string
		allowed bool
	}{
		{name: "outside the group", service: uniqueName(t), allowed: false},
		{name: "prefix without the dot", service: testGroup + "x." + uniqueName(t), allowed: false},
		{name: "inside the group", service: testGroup + "." + uniqueName(t), allowed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := startSandboxedChild(t, "probe", tc.service)
			want := "sandboxed=true allowed=true allowedErr=<nil> register=ok"
			if !tc.allowed {
				want = fmt.Sprintf("sandboxed=true allowed=false allowedErr=<nil> register=code %d", 1100)
			}
			require.Equal(t, want, c.Line(t))
		})
	}
}
