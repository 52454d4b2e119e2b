//go:build linux

package emu

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The emulation keeps a process's IPC space in the process's own memory, where no file shows it.
// So that another process can list it as lsmp lists a task's names (machping rights --pid), each
// process that has a port serves a snapshot of its table on an abstract unix socket named after
// its pid, to processes of its own user and root alone (SO_PEERCRED), one snapshot per
// connection. On macOS the kernel answers the same questions through task_for_pid.

// TableEntry is one name of a process's space as the table gives it: the name, its
// mach_port_type_t bits and its user references (those of its send right, or of its dead name; 1
// for a send-once right), as lsmp shows them.
type TableEntry struct {
	Name  uint32 `json:"name"`
	Type  uint32 `json:"type"`
	URefs uint32 `json:"urefs"`
}

// ErrNoTable is returned by ReadTable for a process that serves no table: it has no emulated
// port, or it is not a machport process.
var ErrNoTable = errors.New("emu: the process serves no port table")

// ErrTableNotPermitted is returned by ReadTable when the process refuses this user.
var ErrTableNotPermitted = errors.New("emu: the process serves its port table to its own user and root only")

// tableAddr is the abstract socket a process serves its table on.
func tableAddr(pid int) string { return "@machport-space-" + strconv.Itoa(pid) }

var tableOnce sync.Once

// serveTable starts serving this process's table, once; called with the first name.
func serveTable() {
	tableOnce.Do(func() {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tableAddr(os.Getpid()), Net: "unix"})
		if err != nil {
			return // the table is a diagnostic: a process without it works the same
		}
		go func() {
			for {
				c, err := ln.AcceptUnix()
				if err != nil {
					return
				}
				answerTable(c)
			}
		}()
	})
}

// answerTable writes the table to a client of this user or root, and closes the connection.
func answerTable(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(time.Second)) // a client that does not read stalls nobody
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	allowed := false
	_ = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		allowed = err == nil && (cred.Uid == 0 || int(cred.Uid) == os.Geteuid())
	})
	if !allowed {
		_, _ = c.Write([]byte("refused\n"))
		return
	}
	_ = json.NewEncoder(c).Encode(Table())
}

// Table returns this process's names, sorted, with their types and user references.
func Table() []TableEntry {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	out := make([]TableEntry, 0, len(sp.entries))
	for n, e := range sp.entries {
		sp.refreshDead(e)
		var urefs uint32
		switch {
		case e.sendRefs > 0:
			urefs = e.sendRefs
		case e.deadRefs > 0:
			urefs = e.deadRefs
		case e.sonce != nil:
			urefs = 1
		}
		out = append(out, TableEntry{Name: n, Type: e.typ(), URefs: urefs})
	}
	slices.SortFunc(out, func(a, b TableEntry) int { return int(a.Name) - int(b.Name) })
	return out
}

// ReadTable reads the table process pid serves.
func ReadTable(pid int) ([]TableEntry, error) {
	c, err := net.DialTimeout("unix", tableAddr(pid), time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w (pid %d): %w", ErrNoTable, pid, err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	if string(b) == "refused\n" {
		return nil, ErrTableNotPermitted
	}
	var t []TableEntry
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("emu: the port table of pid %d: %w", pid, err)
	}
	return t, nil
}
