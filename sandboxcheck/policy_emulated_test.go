//go:build linux

package sandboxcheck_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

func TestEmulatedPolicy(t *testing.T) {
	t.Cleanup(sandboxcheck.ResetApplicationGroups)
	const group = "group.com.example.app"
	cases := []struct {
		name      string
		env       string   // MACHPORT_APP_GROUPS
		declared  []string // SetApplicationGroups, when not nil
		sandboxed bool
		groups    []string
		allowed   map[string]bool
	}{
		{name: "not sandboxed", allowed: map[string]bool{"com.example.anything": true, group + ".x": true}},
		{name: "environment", env: group, sandboxed: true, groups: []string{group},
			allowed: map[string]bool{group + ".worker": true, "com.example.worker": false, group: false, group + "x.y": false}},
		{name: "environment with spaces and two groups", env: " group.com.example.a , ABCDE12345.com.example.b ,", sandboxed: true,
			groups:  []string{"group.com.example.a", "ABCDE12345.com.example.b"},
			allowed: map[string]bool{"ABCDE12345.com.example.b.x": true, "group.com.example.a.x": true, "group.com.example.b.x": false}},
		{name: "declared overrides environment", env: "group.com.other.app", declared: []string{group}, sandboxed: true,
			groups: []string{group}, allowed: map[string]bool{group + ".x": true, "group.com.other.app.x": false}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(sandboxcheck.EnvAppGroups, tc.env)
			sandboxcheck.ResetApplicationGroups()
			if tc.declared != nil {
				require.NoError(t, sandboxcheck.SetApplicationGroups(tc.declared...))
			}
			sandboxed, err := sandboxcheck.Sandboxed()
			require.NoError(t, err)
			require.Equal(t, tc.sandboxed, sandboxed)
			groups, err := sandboxcheck.ApplicationGroups()
			require.NoError(t, err)
			require.Equal(t, tc.groups, groups)
			for name, want := range tc.allowed {
				for _, op := range []sandboxcheck.Operation{sandboxcheck.MachRegister, sandboxcheck.MachLookUp} {
					got, err := sandboxcheck.Allowed(op, name)
					require.NoError(t, err)
					require.Equal(t, want, got, "%s %s", op, name)
					got, err = sandboxcheck.AllowedPerPID(op, name)
					require.NoError(t, err)
					require.Equal(t, want, got, "per-PID %s %s", op, name)
					checkErr := sandboxcheck.Check(op, name)
					require.Equal(t, want, checkErr == nil, "Check(%s, %s): %v", op, name, checkErr)
					if !want {
						var ne *sandboxcheck.NameError
						require.ErrorAs(t, checkErr, &ne)
						require.Equal(t, name, ne.Name)
					}
				}
			}
		})
	}
}

func TestEmulatedPolicyRejectsBadConfiguration(t *testing.T) {
	t.Cleanup(sandboxcheck.ResetApplicationGroups)
	t.Setenv(sandboxcheck.EnvAppGroups, "group.com.example.app,not-a-group")
	_, err := sandboxcheck.ApplicationGroups()
	require.ErrorIs(t, err, sandboxcheck.ErrBadGroup)
	require.ErrorContains(t, err, sandboxcheck.EnvAppGroups)
	require.Contains(t, sandboxcheck.GroupsSource(), sandboxcheck.EnvAppGroups, "a diagnosis can say where to fix it")
	_, err = sandboxcheck.Allowed(sandboxcheck.MachRegister, "group.com.example.app.x")
	require.ErrorIs(t, err, sandboxcheck.ErrBadGroup)
	require.ErrorIs(t, sandboxcheck.Check(sandboxcheck.MachRegister, "group.com.example.app.x"), sandboxcheck.ErrBadGroup)

	require.ErrorIs(t, sandboxcheck.SetApplicationGroups("grp.example"), sandboxcheck.ErrBadGroup)
	require.Error(t, sandboxcheck.SetApplicationGroups())
	_, err = sandboxcheck.Allowed("mach-priv-host-port", "x")
	require.Error(t, err)
	// A malformed name is refused whatever the policy.
	t.Setenv(sandboxcheck.EnvAppGroups, "")
	require.ErrorIs(t, sandboxcheck.Check(sandboxcheck.MachLookUp, "a\x00b"), sandboxcheck.ErrNameHasNUL)
}

// A process declares its application groups; names outside them are refused as the App Sandbox
// refuses them, with the reason.
func Example_emulatedSandbox() {
	if err := sandboxcheck.SetApplicationGroups("group.com.example.app"); err != nil {
		panic(err)
	}
	defer sandboxcheck.ResetApplicationGroups()

	ok, _ := sandboxcheck.Allowed(sandboxcheck.MachRegister, "group.com.example.app.worker")
	fmt.Println("group.com.example.app.worker:", ok)
	err := sandboxcheck.Check(sandboxcheck.MachRegister, "com.example.worker")
	fmt.Println("com.example.worker:", errors.Is(err, sandboxcheck.ErrOutsideGroups))
	// Output:
	// group.com.example.app.worker: true
	// com.example.worker: true
}
