//go:build darwin && !ios

package main

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
)

// taskForPID is task_for_pid(target_tport, pid, &t) (mach/mach_traps.h), bound here because the
// library has no use for it.
var (
	taskForPID     func(target uint32, pid int32, task *uint32) int32
	taskForPIDOnce sync.Once
	taskForPIDErr  error
)

func bindTaskForPID() error {
	taskForPIDOnce.Do(func() {
		if taskForPIDErr = darwin.Load(); taskForPIDErr != nil {
			return
		}
		h, err := purego.Dlopen(darwin.ImageOf(darwin.LibKernel), purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			taskForPIDErr = err
			return
		}
		sym, err := purego.Dlsym(h, "task_for_pid")
		if err != nil {
			taskForPIDErr = err
			return
		}
		purego.RegisterFunc(&taskForPID, sym)
	})
	return taskForPIDErr
}

// inspectPeer lists another task's port names with their rights and user references, as lsmp
// does, through task_for_pid, which xnu grants only to root or a debugger-entitled caller, and
// never for a platform binary or a hardened one without get-task-allow
// (bsd/kern/kern_proc.c task_for_pid_posix_check). Another process's descriptors are not listed.
func inspectPeer(pid int) (peerSpace, error) {
	if err := bindTaskForPID(); err != nil {
		return peerSpace{}, err
	}
	self := darwin.TaskSelf()
	var task uint32
	if kr := taskForPID(self, int32(pid), &task); kr != abi.KERN_SUCCESS {
		// xnu answers KERN_FAILURE both for a pid that does not exist and for one it refuses.
		return peerSpace{}, fmt.Errorf("%w: task_for_pid: %s", errNotPermitted, mach.KernReturn(kr))
	}
	defer darwin.MachPortDeallocate(self, task)
	var namesPtr, typesPtr *uint32
	var nNames, nTypes uint32
	if kr := darwin.MachPortNames(task, &namesPtr, &nNames, &typesPtr, &nTypes); kr != abi.KERN_SUCCESS {
		return peerSpace{}, fmt.Errorf("mach_port_names: %s", mach.KernReturn(kr))
	}
	p := peerSpace{namesKnown: true, names: []rightInfo{}, fds: []fdInfo{}, services: []string{}}
	var names, types []uint32
	if nNames > 0 {
		names = unsafe.Slice(namesPtr, nNames)
	}
	if nTypes > 0 {
		types = unsafe.Slice(typesPtr, nTypes)
	}
	for i, n := range names {
		if i >= len(types) {
			break
		}
		t := mach.PortType(types[i])
		p.names = append(p.names, rightInfo{Name: fmt.Sprintf("%#x", n), Type: t.String(),
			URefs: urefs(t, func(r mach.PortRight) (uint32, error) {
				var refs uint32
				if kr := darwin.MachPortGetRefs(task, n, uint32(r), &refs); kr != abi.KERN_SUCCESS {
					return 0, fmt.Errorf("mach_port_get_refs: %s", mach.KernReturn(kr))
				}
				return refs, nil
			})})
	}
	// MIG returns the arrays as out-of-line memory in this task.
	if nNames > 0 {
		darwin.VMDeallocate(self, uint64(uintptr(unsafe.Pointer(namesPtr))), uint64(nNames)*4)
	}
	if nTypes > 0 {
		darwin.VMDeallocate(self, uint64(uintptr(unsafe.Pointer(typesPtr))), uint64(nTypes)*4)
	}
	return p, nil
}

// permissionHint says who task_for_pid serves.
const permissionHint = "task_for_pid needs root (sudo) or the com.apple.security.cs.debugger entitlement, and a target that is no platform binary and, when hardened, has get-task-allow"
