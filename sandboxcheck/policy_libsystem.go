package sandboxcheck

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
)

// The real sandbox through libSystem, Security and CoreFoundation: the logic that calls
// internal/darwin's variables. It has no build tag on purpose: on macOS policy_darwin.go binds
// the variables and installs it; on Linux the tests install a libSystem double behind the same
// variables (internal/darwin/libsystemdouble) and run it there.
// Status: builds for darwin/arm64 and darwin/amd64 and is checked against the macOS 13.3 SDK;
// executed on Linux against the double; it has not run on macOS yet.

// darwinSandbox asks the sandbox (sandbox_check) and reads the entitlements (SecTask, csops).
type darwinSandbox struct {
	// arch picks the sandbox_check binding: "arm64" or "amd64" (runtime.GOARCH on a Mac).
	arch string
	// load binds libSystem's variables (darwin.Load) and reports why it could not.
	load func() error
	// loadSecurity binds Security's and CoreFoundation's (darwin.LoadSecurity), which only the
	// entitlements need: a program that never reads them never opens those frameworks.
	loadSecurity func() error
	// read32 reads a 32-bit data symbol at the address the loader recorded.
	read32 func(addr uintptr) uint32
}

func (s darwinSandbox) sandboxed() (bool, error) {
	if err := s.load(); err != nil {
		return false, err
	}
	// sandbox_check(pid, NULL, SANDBOX_FILTER_NONE) answers whether the process is sandboxed.
	switch r := s.sandboxCheck("", abi.SANDBOX_FILTER_NONE, ""); {
	case r == -2:
		return false, ErrNoSandboxSPI
	case r < 0:
		return false, fmt.Errorf("sandboxcheck: sandbox_check failed (%d)", r)
	default:
		return r > 0, nil
	}
}

// groupRule: the App Sandbox's group rule governs mach-register; which names a process may look
// up is the profile's business (system services are allowed without any group prefix).
func (darwinSandbox) groupRule(op Operation) bool { return op == MachRegister }

func (s darwinSandbox) allowed(op Operation, scope Scope, name string) (bool, error) {
	if err := ValidateName(name); err != nil {
		return false, err // a NUL would cut the C string short
	}
	if err := s.load(); err != nil {
		return false, err
	}
	filter := uint32(abi.SANDBOX_FILTER_GLOBAL_NAME)
	if scope == PerPIDName {
		filter = abi.SANDBOX_FILTER_LOCAL_NAME
	}
	switch r := s.sandboxCheck(string(op), filter|s.noReport(), name); {
	case r == -2:
		return false, ErrNoSandboxSPI
	case r < 0:
		return false, fmt.Errorf("sandboxcheck: sandbox_check(%s, %s name %q) failed (%d)", op, scope, name, r)
	default:
		return r == 0, nil
	}
}

// sandboxCheck calls sandbox_check(pid, operation, filter, arg) through the binding for s.arch.
// operation may be "" for NULL (with SANDBOX_FILTER_NONE: is the process sandboxed at all?). It
// returns 0 when allowed, 1 when denied, -1 on error, and -2 when the symbol is missing.
//
// sandbox_check is variadic. On Apple arm64 every variadic argument goes on the stack, so the
// arm64 binding fills x3..x7 with padding and passes arg as its ninth argument, which purego puts
// in the first stack slot; on amd64 variadic arguments travel like fixed ones (see
// darwin.SandboxCheckArm64).
func (s darwinSandbox) sandboxCheck(operation string, filter uint32, arg string) int32 {
	var op, a []byte
	var opPtr, argPtr unsafe.Pointer
	if operation != "" {
		op = append([]byte(operation), 0)
		opPtr = unsafe.Pointer(&op[0])
	}
	if arg != "" {
		a = append([]byte(arg), 0) // C strings: the name holds no NUL (ValidateName)
		argPtr = unsafe.Pointer(&a[0])
	}
	pid := int32(os.Getpid())
	var r int32
	switch {
	case s.arch == "arm64" && darwin.SandboxCheckArm64 != nil:
		r = darwin.SandboxCheckArm64(pid, opPtr, filter, 0, 0, 0, 0, 0, argPtr)
	case s.arch == "amd64" && darwin.SandboxCheckAmd64 != nil:
		r = darwin.SandboxCheckAmd64(pid, opPtr, filter, argPtr)
	default:
		return -2
	}
	runtime.KeepAlive(op)
	runtime.KeepAlive(a)
	return r
}

// noReport returns SANDBOX_CHECK_NO_REPORT's value, or 0 when the symbol is missing. The flag
// makes a probe that is denied leave no violation in the log; its value is in no header.
func (s darwinSandbox) noReport() uint32 {
	if darwin.SandboxCheckNoReportAddr == 0 {
		return 0
	}
	return s.read32(darwin.SandboxCheckNoReportAddr)
}

func (s darwinSandbox) groups() ([]string, error) {
	if err := s.load(); err != nil {
		return nil, err
	}
	if err := s.loadSecurity(); err != nil {
		return nil, err
	}
	if darwin.SecTaskCreateFromSelf == nil || darwin.SecTaskCopyValueForEntitlement == nil ||
		darwin.CFStringCreateWithCString == nil || darwin.CFRelease == nil || darwin.CFGetTypeID == nil ||
		darwin.CFStringGetTypeID == nil || darwin.CFStringGetLength == nil || darwin.CFStringGetCString == nil {
		return nil, fmt.Errorf("sandboxcheck: Security.framework or CoreFoundation not available: %w", errors.ErrUnsupported)
	}
	task := darwin.SecTaskCreateFromSelf(0)
	if task == 0 {
		return nil, errors.New("sandboxcheck: SecTaskCreateFromSelf returned NULL")
	}
	defer darwin.CFRelease(task)
	key := darwin.CFStringCreateWithCString(0, EntitlementAppGroups, darwin.CFStringEncodingUTF8)
	if key == 0 {
		return nil, errors.New("sandboxcheck: CFStringCreateWithCString returned NULL")
	}
	defer darwin.CFRelease(key)
	var cfErr uintptr
	value := darwin.SecTaskCopyValueForEntitlement(task, key, &cfErr)
	if cfErr != 0 {
		darwin.CFRelease(cfErr)
		if value != 0 {
			darwin.CFRelease(value)
		}
		return nil, fmt.Errorf("sandboxcheck: SecTaskCopyValueForEntitlement(%s) failed", EntitlementAppGroups)
	}
	if value == 0 {
		return nil, nil // no such entitlement: no groups
	}
	defer darwin.CFRelease(value)
	if darwin.CFGetTypeID(value) == darwin.CFStringGetTypeID() {
		return []string{cfString(value)}, nil
	}
	// An array: read the same entitlement from the signature's XML (see parseEntitlementGroups).
	blob, err := entitlementsBlob()
	if err != nil {
		return nil, err
	}
	groups, err := parseEntitlementGroups(blob)
	if len(groups) == 0 {
		groups = nil
	}
	return groups, err
}

func cfString(s uintptr) string {
	n := darwin.CFStringGetLength(s)*4 + 1 // UTF-16 units to UTF-8 bytes, with room for NUL
	buf := make([]byte, n)
	if !darwin.CFStringGetCString(s, unsafe.Pointer(&buf[0]), n, darwin.CFStringEncodingUTF8) {
		return ""
	}
	for i, b := range buf {
		if b == 0 {
			return string(buf[:i])
		}
	}
	return string(buf)
}

// entitlementsBlob reads this process's entitlements blob with csops: a first call with only
// room for the header learns the length.
func entitlementsBlob() ([]byte, error) {
	if darwin.Csops == nil {
		return nil, fmt.Errorf("sandboxcheck: csops not available: %w", errors.ErrUnsupported)
	}
	pid := int32(os.Getpid())
	header := make([]byte, entitlementsHeaderSize)
	darwin.Csops(pid, abi.CS_OPS_ENTITLEMENTS_BLOB, unsafe.Pointer(&header[0]), uint64(len(header))) // ERANGE expected
	n, err := entitlementsProbeLen(header)
	if err != nil {
		return nil, err
	}
	blob := make([]byte, n)
	if r := darwin.Csops(pid, abi.CS_OPS_ENTITLEMENTS_BLOB, unsafe.Pointer(&blob[0]), uint64(n)); r != 0 {
		return nil, fmt.Errorf("sandboxcheck: csops(CS_OPS_ENTITLEMENTS_BLOB) failed (%d)", r)
	}
	return blob, nil
}
