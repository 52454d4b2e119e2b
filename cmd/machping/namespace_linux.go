package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
// not 0), read from the record the emulated namespace keeps beside the name's lock: "<name>\n
// <pid>\n", written "for people and machping" by bootstrap's served.start. The file's name is
// bootstrap's paths(): a hash of the name under bootstrap.Dir. known is false when the record
// cannot be read or names another service (a stale or replaced record).
func ownerPID(name string, pid int) (owner int, known bool) {
	dir, err := bootstrap.Dir()
	if err != nil {
		return 0, false
	}
	sum := sha256.Sum256([]byte(name))
	key := "g-" + hex.EncodeToString(sum[:16])
	if pid != 0 {
		key = "p" + strconv.Itoa(pid) + "-" + hex.EncodeToString(sum[:16])
	}
	record, err := os.ReadFile(filepath.Join(dir, key+".lock"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(record), "\n")
	if len(lines) < 2 || lines[0] != name {
		return 0, false
	}
	owner, err = strconv.Atoi(lines[1])
	return owner, err == nil && owner > 0
}

// ownerPIDNote says how the owner's pid was learnt, or why it is not known.
const ownerPIDNote = "from the emulated namespace's record of the name"
