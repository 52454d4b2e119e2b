package main

import (
	"fmt"
	"os"
	"testing"

	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

// The emulated sandbox: a process with application groups may register (and, in the
// emulation, look up) only names inside them, and machping says why in words.
func TestDenialUnderAppGroups(t *testing.T) {
	const group = "group.com.example.machping"
	sandbox := []string{sandboxcheck.EnvAppGroups + "=" + group}
	// Its last component makes the suggested name: "<group>.echo".
	outside := fmt.Sprintf("com.example.denied%d.echo", os.Getpid())

	r := runMachping(t, sandbox, "serve", outside)
	requireCode(t, r, exitRefused)
	golden(t, "serve-denied.golden", normalize(r.stderr, outside))

	r = runMachping(t, sandbox, "--json", "serve", outside)
	requireCode(t, r, exitRefused)
	doc := decode[errorDoc](t, r)
	require.Equal(t, 1100, doc.Error.Code)
	require.Equal(t, "BOOTSTRAP_NOT_PRIVILEGED", doc.Error.CodeName)
	require.Equal(t, []string{group}, doc.Error.Groups)
	require.Equal(t, group+".echo", doc.Error.Example)
	require.Contains(t, doc.Error.Hints[0], "<group-id>.<name>")

	r = runMachping(t, sandbox, "register", "--json", outside)
	requireCode(t, r, exitRefused)
	reg := decode[registerDoc](t, r)
	require.False(t, reg.MayRegister)
	require.True(t, reg.Sandbox.Sandboxed)
	require.Equal(t, []string{group}, reg.Sandbox.Groups)
	require.Equal(t, map[string]bool{"mach-register": false, "mach-lookup": false}, reg.SandboxAllows)
	require.Equal(t, 1100, reg.Register.Failure.Code)

	// Unsandboxed, the same name is served; sandboxed, it cannot even be looked up here.
	startServer(t, nil, outside)
	r = runMachping(t, sandbox, "ping", "-c", "1", outside)
	requireCode(t, r, exitRefused)
	require.Contains(t, r.stderr, "not privileged (1100): the sandbox refuses this name")
	require.Contains(t, r.stderr, "this process's application groups: "+group)

	// A name inside the group works end to end, and the self-test picks one by itself.
	inside := fmt.Sprintf("%s.echo%d", group, os.Getpid())
	startServer(t, sandbox, inside)
	requireCode(t, runMachping(t, sandbox, "ping", "-c", "1", "-i", "0", inside), exitOK)
	r = runMachping(t, sandbox, "selftest", "--json")
	requireCode(t, r, exitOK)
	require.Regexp(t, `^`+group+`\.machping\.selftest\.\d+$`, decode[selftestDoc](t, r).Service)

	r = runMachping(t, sandbox, "check", outside)
	requireCode(t, r, exitRefused)
	require.Contains(t, r.stdout, "checked against this process's groups "+group)
	require.Contains(t, r.stdout, "this process: sandboxed, application groups: "+group)
}
