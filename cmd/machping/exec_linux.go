package main

import (
	"os"
	"os/exec"
	"strings"

	"github.com/machport/machport/sandboxcheck"
)

// sandboxed is args run in the emulated App Sandbox with groups.
func sandboxed(groups, args []string) *exec.Cmd {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), sandboxcheck.EnvAppGroups+"="+strings.Join(groups, ","))
	return cmd
}
