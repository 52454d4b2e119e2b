package main

import (
	"errors"
	"fmt"

	"github.com/machport/machport/mach"
)

// Why 'rights --pid' cannot list another process's rights.
var (
	// errNotPermitted: this user may not inspect the process (task_for_pid refused, or
	// /proc/PID/fd unreadable).
	errNotPermitted = errors.New("not permitted to inspect the process")
	// errNoProcess: no process has the pid.
	errNoProcess = errors.New("no such process")
)

// peerSpace is what can be learnt of another process's IPC space from outside it.
type peerSpace struct {
	names      []rightInfo // its names with their rights and user references, when readable
	namesKnown bool
	why        string   // when !namesKnown: why the names cannot be read, and what is shown instead
	services   []string // the service names it serves, where the namespace records owners
	fds        []fdInfo // its open descriptors, where readable
}

// urefs is a name's user-reference count as lsmp's "urefs" column shows it (xnu's IE_BITS_UREFS,
// osfmk/ipc/ipc_entry.h): the references of its send right, or of its dead name, 1 for a
// send-once right, 0 for a bare receive right or port set, which hold no user references.
// refs asks mach_port_get_refs of the name's task.
func urefs(t mach.PortType, refs func(mach.PortRight) (uint32, error)) uint32 {
	right := mach.RightSend
	switch {
	case t.Has(mach.TypeSend):
	case t.Has(mach.TypeDeadName):
		right = mach.RightDeadName
	case t.Has(mach.TypeSendOnce):
		right = mach.RightSendOnce
	default:
		return 0
	}
	n, err := refs(right)
	if err != nil {
		return 0
	}
	return n
}

// ownRight describes one name of this process, with its user references.
func ownRight(n mach.Name, t mach.PortType) rightInfo {
	return rightInfo{Name: fmt.Sprintf("%#x", uint32(n)), Type: t.String(),
		URefs: urefs(t, func(r mach.PortRight) (uint32, error) { return mach.Refs(n, r) })}
}
