//go:build darwin && !ios

package sandboxcheck

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
)

var platform policy = darwinSandbox{}

const groupsSource = "the " + EntitlementAppGroups + " entitlement of this process's code signature"

// SetApplicationGroups is for the emulated policy; on macOS the process's entitlements decide,
// so it returns an error wrapping errors.ErrUnsupported.
func SetApplicationGroups(groups ...string) error {
	return fmt.Errorf("sandboxcheck: application groups come from the entitlements on macOS: %w", errors.ErrUnsupported)
}

// ResetApplicationGroups does nothing on macOS.
func ResetApplicationGroups() {}

type darwinSandbox struct{}

func (darwinSandbox) sandboxed() (bool, error) {
	if err := darwin.Load(); err != nil {
		return false, err
	}
	// sandbox_check(pid, NULL, SANDBOX_FILTER_NONE) answers whether the process is sandboxed.
	switch r := darwin.SandboxCheck(int32(os.Getpid()), "", abi.SANDBOX_FILTER_NONE, ""); {
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

func (darwinSandbox) allowed(op Operation, scope Scope, name string) (bool, error) {
	if err := ValidateName(name); err != nil {
		return false, err // a NUL would cut the C string short
	}
	if err := darwin.Load(); err != nil {
		return false, err
	}
	filter := uint32(abi.SANDBOX_FILTER_GLOBAL_NAME)
	if scope == PerPIDName {
		filter = abi.SANDBOX_FILTER_LOCAL_NAME
	}
	switch r := darwin.SandboxCheck(int32(os.Getpid()), string(op), filter|darwin.SandboxCheckNoReport(), name); {
	case r == -2:
		return false, ErrNoSandboxSPI
	case r < 0:
		return false, fmt.Errorf("sandboxcheck: sandbox_check(%s, %s name %q) failed (%d)", op, scope, name, r)
	default:
		return r == 0, nil
	}
}

func (darwinSandbox) groups() ([]string, error) {
	if err := darwin.LoadSecurity(); err != nil {
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
