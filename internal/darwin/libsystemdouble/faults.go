//go:build linux

package libsystemdouble

import (
	"sync"

	"github.com/machport/machport/internal/abi"
)

// Calls that Fault and After name besides the C functions' own names.
const (
	// CallSend is the send half of mach_msg. A fault with a pseudo-receive code
	// (MACH_SEND_INTERRUPTED, MACH_SEND_TIMED_OUT, MACH_SEND_NO_BUFFER) copies the message in
	// and hands it back in the buffer, as xnu's ipc_kmsg_copyout_pseudo does after a blocked
	// send is interrupted or times out; any other code fails the send before copy-in.
	CallSend = "mach_msg send"
	// CallReceive is the receive half of mach_msg. A fault fails it before a message is
	// dequeued (MACH_RCV_INTERRUPTED: a signal arrived while it waited).
	CallReceive = "mach_msg receive"
)

// Fault makes calls of the double fail as the kernel does under signals or pressure.
type Fault struct {
	Call  string // a C function name ("mach_port_allocate", "vm_allocate", ...), CallSend or CallReceive
	Name  uint32 // when not 0, only calls on this name: the destination of a send, the name received on, or the port argument
	Code  int32  // what the call returns
	Count int    // how many calls fail; 0 means one
}

var faults struct {
	sync.Mutex
	list     []*Fault
	after    []afterHook
	physical int // received out-of-line regions still to deliver as physical copies
}

type afterHook struct {
	call string
	name uint32
	fn   func()
}

// Inject arms f. The returned function disarms what is left of it.
func Inject(f Fault) (remove func()) {
	if f.Count <= 0 {
		f.Count = 1
	}
	p := &f
	faults.Lock()
	faults.list = append(faults.list, p)
	faults.Unlock()
	return func() {
		faults.Lock()
		defer faults.Unlock()
		for i, q := range faults.list {
			if q == p {
				faults.list = append(faults.list[:i], faults.list[i+1:]...)
				return
			}
		}
	}
}

// After runs fn once, the next time call (a C function name, CallSend or CallReceive) on name
// (0: any; as Fault.Name) has done its work and is about to return: the moment another thread
// could act between two calls of the code under test.
func After(call string, name uint32, fn func()) {
	faults.Lock()
	faults.after = append(faults.after, afterHook{call, name, fn})
	faults.Unlock()
}

// PhysicalCopies makes the next n out-of-line regions received arrive as physical copies with
// deallocate = 0, as xnu's ipc_kmsg_copyout_ool_descriptor writes them for memory it copied
// rather than mapped: mach_msg_destroy then leaves them mapped.
func PhysicalCopies(n int) {
	faults.Lock()
	faults.physical = n
	faults.Unlock()
}

// Reset disarms every fault and hook.
func Reset() {
	faults.Lock()
	faults.list, faults.after, faults.physical = nil, nil, 0
	faults.Unlock()
}

// take consumes one matching fault and returns its code, or 0.
func take(call string, name uint32) int32 {
	faults.Lock()
	defer faults.Unlock()
	for i, f := range faults.list {
		if f.Call != call || (f.Name != 0 && f.Name != name) {
			continue
		}
		f.Count--
		if f.Count == 0 {
			faults.list = append(faults.list[:i], faults.list[i+1:]...)
		}
		return f.Code
	}
	return 0
}

// takePhysical reports whether the next received region is to be a physical copy.
func takePhysical() bool {
	faults.Lock()
	defer faults.Unlock()
	if faults.physical > 0 {
		faults.physical--
		return true
	}
	return false
}

// enter checks the task port a call names and consumes a fault for it. The Mach calls of
// libsystem_kernel are traps that resolve the task first: a name that is not this task's fails
// the way xnu's mach_kernelrpc.c does (port_name_to_task failing gives MACH_SEND_INVALID_DEST).
func enter(call string, task, name uint32) int32 {
	if task != *taskSelf {
		return abi.MACH_SEND_INVALID_DEST
	}
	return take(call, name)
}

// leave runs the hooks armed for call on name, then returns kr.
func leave(call string, name uint32, kr int32) int32 {
	faults.Lock()
	var run []func()
	kept := faults.after[:0]
	for _, h := range faults.after {
		if h.call == call && (h.name == 0 || h.name == name) {
			run = append(run, h.fn)
		} else {
			kept = append(kept, h)
		}
	}
	faults.after = kept
	faults.Unlock()
	for _, fn := range run {
		fn()
	}
	return kr
}
