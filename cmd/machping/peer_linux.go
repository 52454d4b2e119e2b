package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/mach"
)

// inspectPeer reads another process's emulated IPC space: the table the process serves to its
// own user and root (internal/emu's table.go: its names, rights and user references, which live
// in its memory), its descriptors (the sockets of its ports' channels, the memfds of queue
// counters and out-of-line memory) and the names it serves, which the namespace records beside
// each name's lock.
func inspectPeer(pid int) (peerSpace, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return peerSpace{}, errNoProcess
	case errors.Is(err, fs.ErrPermission):
		return peerSpace{}, errNotPermitted
	case err != nil:
		return peerSpace{}, err
	}
	p := peerSpace{fds: []fdInfo{}, services: []string{}}
	switch table, err := emu.ReadTable(pid); {
	case errors.Is(err, emu.ErrTableNotPermitted):
		return peerSpace{}, errNotPermitted
	case err != nil:
		p.why = "the process serves no port table: it has no port of machport's emulation (or is no machport process)"
	default:
		p.namesKnown, p.names = true, make([]rightInfo, 0, len(table))
		for _, e := range table {
			p.names = append(p.names, rightInfo{Name: fmt.Sprintf("%#x", e.Name),
				Type: mach.PortType(e.Type).String(), URefs: e.URefs})
		}
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		info := fdInfo{FD: fd}
		info.Target, _ = os.Readlink(filepath.Join(dir, e.Name()))
		p.fds = append(p.fds, info)
	}
	slices.SortFunc(p.fds, func(a, b fdInfo) int { return a.FD - b.FD })
	if served, err := bootstrap.ServedBy(pid); err == nil {
		p.services = served
	}
	return p, nil
}

// permissionHint says who may read another process's descriptors.
const permissionHint = "/proc/PID/fd is readable only by the process's own user and root (ptrace access mode): run machping as that user, or with sudo"
