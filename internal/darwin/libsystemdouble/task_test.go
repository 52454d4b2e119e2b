//go:build linux

package libsystemdouble

import (
	"os"
	"testing"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
	"github.com/stretchr/testify/require"
)

// task_name_for_pid and task_info answer as xnu does: another task than the caller's, no such
// pid and a refused process give KERN_FAILURE and MACH_PORT_NULL; two calls for one task give one
// name with two user references, each taken back by mach_port_deallocate; task_info wants room
// for the whole token, and fails on a name that is no task name of the caller.
func TestTaskCalls(t *testing.T) {
	Install()
	t.Cleanup(Reset)
	self := TaskSelf()
	pid := int32(os.Getpid())
	before := TaskNames()
	name := uint32(0xdead)
	require.Equal(t, int32(abi.KERN_FAILURE), darwin.TaskNameForPID(self+1, pid, &name))
	require.Zero(t, name)
	require.Equal(t, int32(abi.KERN_FAILURE), darwin.TaskNameForPID(self, 1<<30, &name))
	require.Zero(t, name)
	restore := SetProcess(int(pid), &Process{Version: 3, Denied: true})
	require.Equal(t, int32(abi.KERN_FAILURE), darwin.TaskNameForPID(self, pid, &name))
	restore()

	var a, b uint32
	require.Equal(t, int32(abi.KERN_SUCCESS), darwin.TaskNameForPID(self, pid, &a))
	require.Equal(t, int32(abi.KERN_SUCCESS), darwin.TaskNameForPID(self, pid, &b))
	require.Equal(t, a, b, "one name per task")
	require.Equal(t, before+2, TaskNames())

	var tok [8]uint32
	info := (*int32)(unsafe.Pointer(&tok[0]))
	count := uint32(7)
	require.Equal(t, int32(abi.KERN_INVALID_ARGUMENT), darwin.TaskInfo(a, darwin.TaskAuditToken, info, &count))
	count = 8
	require.Equal(t, int32(abi.KERN_INVALID_ARGUMENT), darwin.TaskInfo(a, 13, info, &count), "TASK_SECURITY_TOKEN is not modelled")
	require.Equal(t, int32(abi.MACH_SEND_INVALID_DEST), darwin.TaskInfo(0x1234, darwin.TaskAuditToken, info, &count))
	require.Equal(t, int32(abi.KERN_SUCCESS), darwin.TaskInfo(a, darwin.TaskAuditToken, info, &count))
	require.Equal(t, uint32(8), count)
	require.Equal(t, uint32(pid), tok[5])
	require.Equal(t, uint32(os.Geteuid()), tok[1])

	require.Equal(t, int32(abi.KERN_SUCCESS), darwin.MachPortDeallocate(self, a))
	require.Equal(t, int32(abi.KERN_SUCCESS), darwin.TaskInfo(b, darwin.TaskAuditToken, info, &count), "one reference is left")
	require.Equal(t, int32(abi.KERN_SUCCESS), darwin.MachPortDeallocate(self, b))
	require.Equal(t, before, TaskNames())
	require.Equal(t, int32(abi.MACH_SEND_INVALID_DEST), darwin.TaskInfo(a, darwin.TaskAuditToken, info, &count), "the name is gone")
}
