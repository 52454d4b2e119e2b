//go:build linux

package libsystemdouble

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
)

// Another process's audit token, as package peer reads it on macOS (TokenForPID):
// task_name_for_pid, task_info(TASK_AUDIT_TOKEN) and mach_port_deallocate of the name.
//
// The names are the double's own, not the emulation's: a task name port is a kernel object, and
// xnu copies a send right to it out into the caller's space, under one name per task with one
// user reference per copy (ipc_port_copyout_send). The double does the same, ending its names in
// 0x7 (the emulation's end in 3, mach_task_self_'s in 0xb), and its mach_port_deallocate takes
// them back; TaskNames counts what is left, for leak checks. mach_port_names does not list them.
//
// What xnu answers (bsd/vm/vm_unix.c task_name_for_pid; osfmk/kern/task.c task_info and
// task_info_from_user):
//   - task_name_for_pid(target, pid, &tn): KERN_FAILURE and tn = MACH_PORT_NULL when target is
//     not the caller's task, when no process has the pid or it is a zombie, and when the caller
//     is neither root, nor the process itself, nor of the same effective and real user (or a MAC
//     policy refuses): the same code for all, so the caller cannot tell them apart by it. A
//     zombie is what /proc says (state Z), or a Process with Gone. tn = MACH_PORT_DEAD with
//     KERN_SUCCESS when the task's name port died before the copy-out (Process.TaskDead).
//   - task_info(tn, TASK_AUDIT_TOKEN, out, &count): the task's token (pid version included) and
//     count = TASK_AUDIT_TOKEN_COUNT; KERN_INVALID_ARGUMENT when count is smaller or the task is
//     no longer active (it exited after task_name_for_pid: the name still names the old task,
//     never the pid's next process). A name that is no send right of the caller fails the MIG
//     send (MACH_SEND_INVALID_DEST). The double models the TASK_AUDIT_TOKEN flavor only.

// taskNameBase is the first name the double gives a task name port; later ones step by 0x100.
const taskNameBase = 0x2007

// task is the identity of a task the double gave a name for: a pid and its version.
type task struct {
	pid     int32
	version uint32
}

var taskNames struct {
	sync.Mutex
	byName map[uint32]*taskName
	next   uint32
}

type taskName struct {
	task task
	refs uint32 // user references of the send right
}

// TaskNames returns how many user references to task name ports this process holds: 0 when
// every name task_name_for_pid gave was deallocated.
func TaskNames() int {
	taskNames.Lock()
	defer taskNames.Unlock()
	n := 0
	for _, tn := range taskNames.byName {
		n += int(tn.refs)
	}
	return n
}

// installTask binds this file's calls, and makes mach_port_deallocate take task names back
// before it hands every other name to the emulation (Install runs it once, after installMach).
func installTask() {
	darwin.TaskNameForPID = taskNameForPID
	darwin.TaskInfo = taskInfo
	emuDeallocate := darwin.MachPortDeallocate
	darwin.MachPortDeallocate = func(t, name uint32) int32 {
		taskNames.Lock()
		tn, ok := taskNames.byName[name]
		taskNames.Unlock()
		if !ok {
			return emuDeallocate(t, name)
		}
		if kr := enter("mach_port_deallocate", t, name); kr != 0 {
			return kr
		}
		taskNames.Lock()
		if tn.refs--; tn.refs == 0 {
			delete(taskNames.byName, name)
		}
		taskNames.Unlock()
		return leave("mach_port_deallocate", name, abi.KERN_SUCCESS)
	}
}

// mayName reports whether this process may have pid's task name port: xnu's test in
// task_name_for_pid (the process itself, root, or the same effective and real user).
func mayName(pid int32, p Process) bool {
	if p.Denied {
		return false
	}
	if int(pid) == os.Getpid() || os.Geteuid() == 0 {
		return true
	}
	ids, ok := procIDs(pid)
	return ok && int(ids.euid) == os.Geteuid() && int(ids.ruid) == os.Getuid()
}

// ids are a process's users and groups as an audit token carries them.
type ids struct{ auid, euid, egid, ruid, rgid uint32 }

// procIDs reads pid's users and groups from /proc/PID/status ("Uid:\treal\teffective\t...").
func procIDs(pid int32) (ids, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/status")
	if err != nil {
		return ids{}, false
	}
	var out ids
	found := 0
	for line := range strings.Lines(string(b)) {
		for _, k := range []struct {
			prefix    string
			real, eff *uint32
		}{{"Uid:", &out.ruid, &out.euid}, {"Gid:", &out.rgid, &out.egid}} {
			rest, ok := strings.CutPrefix(line, k.prefix)
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 2 {
				return ids{}, false
			}
			r, err1 := strconv.ParseUint(f[0], 10, 32)
			e, err2 := strconv.ParseUint(f[1], 10, 32)
			if err1 != nil || err2 != nil {
				return ids{}, false
			}
			*k.real, *k.eff = uint32(r), uint32(e)
			found++
		}
	}
	out.auid = ^uint32(0) // AU_DEFAUDITID: the double's processes have no audit user
	return out, found == 2
}

// taskNameForPID is task_name_for_pid(target, pid, &tn), as xnu answers it (see above).
func taskNameForPID(target uint32, pid int32, tn *uint32) int32 {
	const call = "task_name_for_pid"
	*tn = 0
	if target != *taskSelf {
		return leave(call, 0, abi.KERN_FAILURE) // port_name_to_task fails
	}
	if r := take(call, 0); r != 0 {
		return leave(call, 0, r)
	}
	p, ok := process(pid) // a zombie is not: xnu refuses p_stat == SZOMB
	if !ok || !mayName(pid, p) {
		return leave(call, 0, abi.KERN_FAILURE)
	}
	if p.TaskDead {
		*tn = abi.MACH_PORT_DEAD // no right was copied out: nothing to deallocate
		return leave(call, 0, abi.KERN_SUCCESS)
	}
	t := task{pid: pid, version: p.Version}
	taskNames.Lock()
	if taskNames.byName == nil {
		taskNames.byName = map[uint32]*taskName{}
	}
	name := uint32(0)
	for n, e := range taskNames.byName {
		if e.task == t {
			name = n
			break
		}
	}
	if name == 0 {
		name = taskNameBase + taskNames.next*0x100
		taskNames.next++
		taskNames.byName[name] = &taskName{task: t}
	}
	taskNames.byName[name].refs++
	taskNames.Unlock()
	*tn = name
	return leave(call, 0, abi.KERN_SUCCESS)
}

// taskInfo is task_info(tn, flavor, out, &count) for TASK_AUDIT_TOKEN (see above).
func taskInfo(name, flavor uint32, out *int32, count *uint32) int32 {
	const call = "task_info"
	taskNames.Lock()
	tn, ok := taskNames.byName[name]
	var t task
	if ok {
		t = tn.task
	}
	taskNames.Unlock()
	if !ok {
		return leave(call, name, abi.MACH_SEND_INVALID_DEST)
	}
	if r := take(call, name); r != 0 {
		return leave(call, name, r)
	}
	if flavor != darwin.TaskAuditToken || out == nil || count == nil || *count < darwin.TaskAuditTokenCount {
		return leave(call, name, abi.KERN_INVALID_ARGUMENT)
	}
	p, alive := process(t.pid)
	if !alive || p.Version != t.version {
		return leave(call, name, abi.KERN_INVALID_ARGUMENT) // the task is no longer active
	}
	id, ok := procIDs(t.pid)
	if !ok {
		return leave(call, name, abi.KERN_INVALID_ARGUMENT)
	}
	// xnu's layout (set_security_token_task_internal): auid, euid, egid, ruid, rgid, pid, asid,
	// pid version.
	tok := [8]uint32{id.auid, id.euid, id.egid, id.ruid, id.rgid, uint32(t.pid), 0, t.version}
	dst := unsafe.Slice((*uint32)(unsafe.Pointer(out)), darwin.TaskAuditTokenCount)
	copy(dst, tok[:])
	*count = darwin.TaskAuditTokenCount
	return leave(call, name, abi.KERN_SUCCESS)
}
