package main

import (
	"fmt"

	"github.com/machport/machport/bootstrap"
)

// namespaceHint says where the emulated namespace lives, which both sides must share.
func namespaceHint() string {
	dir, err := bootstrap.Dir()
	if err != nil {
		dir = err.Error()
	}
	return fmt.Sprintf("on Linux, client and server must share %s (here %s)", bootstrap.EnvDir, dir)
}

// ownerPID is the pid of the process that serves name (the per-PID service of pid, when pid is
// not 0), from the emulated namespace's record of the name (bootstrap.Owner).
func ownerPID(name string, pid int) (owner int, known bool) { return bootstrap.Owner(name, pid) }

// ownerPIDNote says how the owner's pid was learnt, or why it is not known.
const ownerPIDNote = "from the emulated namespace's record of the name"
