//go:build linux

package libsystemdouble

import (
	"strings"
	"sync"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/internal/emu"
)

// BootstrapPortName is the value of the double's bootstrap_port, the task's send right to
// launchd. Like TaskSelfName it ends in 0xb, which no emulated port name does.
const BootstrapPortName = 0x20b

// bootstrapPort is the data symbol bootstrap_port: Go memory whose address Install publishes, as
// dlsym gives libsystem_kernel's. A test may store another value in it (SetBootstrapPort), as a
// process whose bootstrap port was replaced or never set would have.
var bootstrapPort = new(uint32)

// Namespace is the name service behind the double's bootstrap_* calls: what launchd keeps for
// this user. Package bootstrap provides its Linux namespace (one per user, shared by processes
// through the file system), so that processes that all run the Darwin logic see each other's
// names. The double adds what launchd itself decides on top of it (launchd-842 src/core.c,
// job_mig_register2, job_mig_check_in2 and job_mig_look_up2): the sandbox's verdict, the
// bootstrap port, the MIG copy of the name and of the rights.
type Namespace interface {
	// Register publishes the send right send under name; on success the namespace owns that
	// right (launchd's copy) and drops the name when the right's port dies. It returns 1103 when
	// this process serves the name already and 1100 when another process does.
	Register(name string, send uint32, perPID bool) int32
	// CheckIn returns a new receive right published under name (launchd makes the service of an
	// undeclared name, as job_mig_check_in2 does with flags 0), with the same refusals as
	// Register.
	CheckIn(name string) (recv uint32, kr int32)
	// LookUp returns a send right to the service of name (of process pid when pid is not 0).
	LookUp(name string, pid int) (send uint32, kr int32)
}

var launchd struct {
	sync.Mutex
	ns Namespace
}

// SetNamespace makes ns the namespace behind the bootstrap calls. Package bootstrap calls it when
// UseDarwinLogic switches it to its Darwin logic.
func SetNamespace(ns Namespace) {
	launchd.Lock()
	launchd.ns = ns
	launchd.Unlock()
}

func namespace() Namespace {
	launchd.Lock()
	defer launchd.Unlock()
	return launchd.ns
}

// SetBootstrapPort stores port in the double's bootstrap_port and returns a function that puts
// the previous value back. With 0 the task has no launchd to ask, and every bootstrap call fails
// as its MIG request cannot be sent.
func SetBootstrapPort(port uint32) (restore func()) {
	old := *bootstrapPort
	*bootstrapPort = port
	return func() { *bootstrapPort = old }
}

// ReadUint32 reads a 32-bit data symbol through the address the double published for it, as the
// Darwin loader reads libSystem's (the memory is Go's here: hence no checkptr).
//
//go:nocheckptr
func ReadUint32(addr uintptr) uint32 {
	return *(*uint32)(unsafe.Add(unsafe.Pointer(nil), addr))
}

func installLaunchd() {
	*bootstrapPort = BootstrapPortName
	darwin.BootstrapPortAddr = uintptr(unsafe.Pointer(bootstrapPort))
	darwin.BootstrapRegister2 = bootstrapRegister2
	darwin.BootstrapCheckIn = bootstrapCheckIn
	darwin.BootstrapLookUp = func(bp uint32, name string, port *uint32) int32 {
		// libbootstrap's bootstrap_look_up is bootstrap_look_up2 with no pid and no flags.
		return lookUp("bootstrap_look_up", bp, name, port, 0, 0)
	}
	darwin.BootstrapLookUp2 = func(bp uint32, name string, port *uint32, pid int32, flags uint64) int32 {
		return lookUp("bootstrap_look_up2", bp, name, port, pid, flags)
	}
	darwin.BootstrapStrerror = bootstrapStrerror
}

// callLaunchd begins a bootstrap call: the MIG request goes to bp, which must be launchd's
// port (a send to any other name fails as mach_msg would: MACH_SEND_INVALID_DEST), and an
// injected fault is launchd's answer.
func callLaunchd(call string, bp uint32) (Namespace, int32) {
	ns := namespace()
	if bp != BootstrapPortName || ns == nil {
		return nil, abi.MACH_SEND_INVALID_DEST
	}
	return ns, take(call, 0)
}

// nameT is what launchd receives of a const name_t argument: the C string up to its NUL, cut to
// BOOTSTRAP_MAX_NAME_LEN-1 bytes by the MIG stub's strncpy into the request's name_t.
func nameT(name string) string {
	if i := strings.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	if len(name) >= abi.BOOTSTRAP_MAX_NAME_LEN {
		name = name[:abi.BOOTSTRAP_MAX_NAME_LEN-1]
	}
	return name
}

// bootstrapRegister2 is bootstrap_register2(bp, name, port, flags). launchd checks the sandbox
// first (mach-register, local-name for a per-PID service), then who serves the name. The MIG
// request carries port with MACH_MSG_TYPE_COPY_SEND: launchd's own send right, which it keeps
// only when it registers the name.
func bootstrapRegister2(bp uint32, name string, port uint32, flags uint64) int32 {
	const call = "bootstrap_register2"
	ns, kr := callLaunchd(call, bp)
	if kr != 0 {
		return kr
	}
	name = nameT(name)
	perPID := flags&abi.BOOTSTRAP_PER_PID_SERVICE != 0
	if !sandboxAllows(opRegister, perPID, name) {
		return leave(call, 0, abi.BOOTSTRAP_NOT_PRIVILEGED)
	}
	if t, kr := emu.Type(port); kr != abi.KERN_SUCCESS || t&abi.MACH_PORT_TYPE_SEND == 0 {
		return leave(call, 0, abi.MACH_SEND_INVALID_RIGHT) // the MIG copy-in of the right fails
	}
	if kr := emu.ModRefs(port, abi.MACH_PORT_RIGHT_SEND, 1); kr != abi.KERN_SUCCESS {
		return leave(call, 0, kr)
	}
	kr = ns.Register(name, port, perPID)
	if kr != abi.KERN_SUCCESS {
		emu.ModRefs(port, abi.MACH_PORT_RIGHT_SEND, -1) // launchd releases its copy
	}
	return leave(call, 0, kr)
}

// bootstrapCheckIn is bootstrap_check_in(bp, name, &port): job_mig_check_in2 with flags 0. A
// name nobody serves is made into a service of this process after a mach-register sandbox check
// (launchd then logs "Please add the following service to the configuration file"); the caller
// receives its receive right (MACH_MSG_TYPE_MOVE_RECEIVE). *port is written only on success, as
// the MIG stub writes out-parameters only from a successful reply. (launchd checks the sandbox
// only before it makes a name; the double checks it first, which differs only for a name this
// process serves but its sandbox refuses, which it could not have made.)
func bootstrapCheckIn(bp uint32, name string, port *uint32) int32 {
	const call = "bootstrap_check_in"
	ns, kr := callLaunchd(call, bp)
	if kr != 0 {
		return kr
	}
	name = nameT(name)
	if !sandboxAllows(opRegister, false, name) {
		return leave(call, 0, abi.BOOTSTRAP_NOT_PRIVILEGED)
	}
	recv, kr := ns.CheckIn(name)
	if kr == abi.KERN_SUCCESS {
		*port = recv
	}
	return leave(call, 0, kr)
}

// lookUp is bootstrap_look_up2(bp, name, &port, pid, flags): the sandbox's mach-lookup check,
// then the name's service. Without BOOTSTRAP_PER_PID_SERVICE the pid is ignored.
func lookUp(call string, bp uint32, name string, port *uint32, pid int32, flags uint64) int32 {
	ns, kr := callLaunchd(call, bp)
	if kr != 0 {
		return kr
	}
	name = nameT(name)
	perPID := flags&abi.BOOTSTRAP_PER_PID_SERVICE != 0
	if !sandboxAllows(opLookUp, perPID, name) {
		return leave(call, 0, abi.BOOTSTRAP_NOT_PRIVILEGED)
	}
	if !perPID {
		pid = 0
	} else if pid == 0 {
		return leave(call, 0, abi.BOOTSTRAP_UNKNOWN_SERVICE) // no process 0 serves anything
	}
	send, kr := ns.LookUp(name, int(pid))
	if kr == abi.KERN_SUCCESS {
		*port = send
	}
	return leave(call, 0, kr)
}

// bootstrapStrerror is libbootstrap's bootstrap_strerror.
func bootstrapStrerror(code int32) string {
	switch code {
	case abi.BOOTSTRAP_SUCCESS:
		return "Success"
	case abi.BOOTSTRAP_NOT_PRIVILEGED:
		return "Permission denied"
	case abi.BOOTSTRAP_NAME_IN_USE, abi.BOOTSTRAP_SERVICE_ACTIVE:
		return "Service name already exists"
	case abi.BOOTSTRAP_UNKNOWN_SERVICE:
		return "Unknown service name"
	case abi.BOOTSTRAP_BAD_COUNT:
		return "Too many lookups were requested in one request"
	case abi.BOOTSTRAP_NO_MEMORY:
		return "Out of memory"
	}
	return "unknown error code" // mach_error_string's text for a code no table knows
}
