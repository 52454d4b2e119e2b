//go:build darwin && !ios

package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The real sandbox: under sandbox-exec with a profile that allows mach-register only inside
// a group, machping serve gets 1100 for another name and serves a name inside the group.
// Without the entitlement the process has no known groups, so the diagnosis cannot name them.
func TestDenialUnderSandboxExec(t *testing.T) {
	const group = "group.com.example.machping"
	profile := fmt.Sprintf("(version 1)\n(allow default)\n(deny mach-register)\n(allow mach-register (global-name-prefix \"%s.\"))\n", group)
	if _, err := exec.LookPath("sandbox-exec"); err != nil {
		t.Fatalf("sandbox-exec: %v", err)
	}
	sandboxed := func(args ...string) result {
		cmd := exec.Command("sandbox-exec", append([]string{"-p", profile, machping}, args...)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr, cmd.Env = &stdout, &stderr, os.Environ()
		_ = cmd.Run()
		return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	}
	outside := uniqueName(t)
	r := sandboxed("serve", outside)
	requireCode(t, r, exitRefused)
	require.Contains(t, r.stderr, "not privileged (1100)")

	r = sandboxed("register", "--json", outside)
	requireCode(t, r, exitRefused)
	reg := decode[registerDoc](t, r)
	require.Equal(t, 1100, reg.Register.Failure.Code)
	require.Equal(t, false, reg.SandboxAllows["mach-register"])

	r = sandboxed("register", "--json", group+".probe")
	requireCode(t, r, exitOK)
	require.True(t, decode[registerDoc](t, r).SandboxAllows["mach-register"])
}
