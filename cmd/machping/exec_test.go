package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// machping exec runs a command in an app-group sandbox and exits with the command's status: a
// name outside the group is refused with 1100 there (exit 4), one inside is not.
func TestExec(t *testing.T) {
	const group = "group.com.machport.machping.exec"
	outside := fmt.Sprintf("com.machport.machping.exec%d.echo", os.Getpid())
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string // a substring of stdout
		stderr string // a substring of stderr
	}{
		{name: "1100 outside the group", args: []string{"--group", group, "--", machping, "register", outside},
			code: exitRefused, stdout: "not privileged (1100): the sandbox refuses this name"},
		{name: "serve outside the group", args: []string{"--group", group, machping, "serve", outside},
			code: exitRefused, stderr: "cannot serve " + outside + ": not privileged (1100)"},
		{name: "inside the group", args: []string{"--group", group, "--", machping, "register", group + ".echo"},
			code: exitOK, stdout: "this process may register it"},
		{name: "the command's status", args: []string{"--group", group, "sh", "-c", "exit 7"}, code: 7},
		{name: "killed by a signal", args: []string{"--group", group, "sh", "-c", "kill -TERM $$"}, code: 128 + 15},
		{name: "no such command", args: []string{"--group", group, "machping-no-such-command"}, code: 127,
			stderr: "machping: cannot run machping-no-such-command: "},
		{name: "malformed group", args: []string{"--group", "bad group", "true"}, code: exitError,
			stderr: `application group "bad group" is malformed`},
		{name: "no group", args: []string{"true"}, code: exitError, stderr: "exec needs at least one --group"},
		{name: "no command", args: []string{"--group", group}, code: exitError, stderr: "exec needs a command to run"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// As a child of machping's, a server that was not refused exits at the end of its
			// stdin (none) instead of serving on.
			r := runMachping(t, []string{childEnv + "=1"}, append([]string{"exec"}, tc.args...)...)
			requireCode(t, r, tc.code)
			require.Contains(t, r.stdout, tc.stdout)
			require.Contains(t, r.stderr, tc.stderr)
		})
	}
}

// On Linux the sandbox is the emulated one: the command gets the groups in MACHPORT_APP_GROUPS.
func TestExecEmulatedSandbox(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("macOS uses sandbox-exec, whose profile TestSandboxProfile checks")
	}
	r := runMachping(t, nil, "exec", "--group", "group.a.example", "--group", "group.b.example", "sh", "-c", `echo "$MACHPORT_APP_GROUPS"`)
	requireCode(t, r, exitOK)
	require.Equal(t, "group.a.example,group.b.example\n", r.stdout)
}

// The macOS profile denies mach-register and mach-lookup outside the groups, except Apple's
// system services for look-ups.
func TestSandboxProfile(t *testing.T) {
	got := sandboxProfile([]string{"group.a.example", "ABCDE12345.b"})
	require.Equal(t, strings.Join([]string{
		"(version 1)",
		"(allow default)",
		"(deny mach-register)",
		"(deny mach-lookup)",
		`(allow mach-lookup (global-name-prefix "com.apple."))`,
		`(allow mach-register (global-name-prefix "group.a.example."))`,
		`(allow mach-lookup (global-name-prefix "group.a.example."))`,
		`(allow mach-register (global-name-prefix "ABCDE12345.b."))`,
		`(allow mach-lookup (global-name-prefix "ABCDE12345.b."))`,
	}, "\n")+"\n", got)
}
