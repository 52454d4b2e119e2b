package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/machport/machport/sandboxcheck"
)

func init() {
	register(&command{
		name:    "exec",
		args:    "--group G [--group G]... [--] CMD [ARG]...",
		summary: "run a command inside an app-group sandbox, to reproduce 1100s",
		detail: `Runs CMD with its arguments in a sandbox that allows registering and looking up Mach names
only inside the application groups given with --group, as the App Sandbox does for an app with
those groups: on Linux the emulated sandbox (` + sandboxcheck.EnvAppGroups + `), on macOS
sandbox-exec with a generated profile (system services under com.apple. stay reachable, as
they are for a sandboxed app). Flags end at CMD. Exit status: CMD's (128+N when a signal N
killed it, 127 when it cannot be started); 2 for bad usage or a malformed group.`,
		examples: []string{
			"machping exec --group group.com.example.app -- machping serve com.example.outside",
			"machping exec --group group.com.example.app -- ./helper",
		},
		flagsFirst: true,
		flags:      execFlags,
	})
}

func execFlags(fs *flag.FlagSet, o *output) func(context.Context, []string) int {
	var groups stringList
	fs.Var(&groups, "group", "an application-group `identifier` the sandbox allows (repeatable)")
	return func(ctx context.Context, args []string) int {
		switch {
		case len(groups) == 0:
			return o.usageError("exec needs at least one --group")
		case len(args) == 0:
			return o.usageError("exec needs a command to run")
		}
		for _, g := range groups {
			if err := sandboxcheck.ValidateGroup(g); err != nil {
				return o.fail(diagnosis{Message: fmt.Sprintf("application group %q is malformed", g), Cause: err.Error()}, exitError)
			}
		}
		cmd := sandboxed(groups, args)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if o.stdout != os.Stdout { // run from a test or an example: keep its writers
			cmd.Stdout, cmd.Stderr = o.stdout, o.stderr
		}
		// Ctrl-C reaches the command through the terminal's process group; machping waits for
		// it and takes its status, as a shell does.
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &exit):
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return exit.ExitCode()
		default:
			o.progress("machping: cannot run %s: %v\n", shellQuote(args[0]), err)
			return 127
		}
	}
}

// sandboxProfile is the sandbox-exec profile of an app with groups: it may register and look up
// names inside the groups only, and look up Apple's system services (com.apple.*), which the
// App Sandbox's own profile lets a sandboxed app reach.
func sandboxProfile(groups []string) string {
	var b strings.Builder
	b.WriteString("(version 1)\n(allow default)\n(deny mach-register)\n(deny mach-lookup)\n")
	b.WriteString("(allow mach-lookup (global-name-prefix \"com.apple.\"))\n")
	for _, g := range groups {
		fmt.Fprintf(&b, "(allow mach-register (global-name-prefix %q))\n", g+".")
		fmt.Fprintf(&b, "(allow mach-lookup (global-name-prefix %q))\n", g+".")
	}
	return b.String()
}
