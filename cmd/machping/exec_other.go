//go:build !linux

package main

import "os/exec"

// sandboxed is args run by sandbox-exec under a profile that allows only the groups' names.
// The process gets no application-group entitlement, so it cannot name its groups itself.
func sandboxed(groups, args []string) *exec.Cmd {
	return exec.Command("sandbox-exec", append([]string{"-p", sandboxProfile(groups), "--"}, args...)...)
}
