//go:build darwin && !ios

package darwin

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

var (
	loadOnce sync.Once
	loadErr  error
)

// Load opens libSystem and binds every entry of Funcs and DataSymbols. It runs once; later calls
// return the first result. A missing required symbol is an error, never a panic: symbols are
// looked up with Dlsym before purego registers them.
func Load() error {
	loadOnce.Do(func() { loadErr = load() })
	return loadErr
}

func load() error {
	libs := map[string]uintptr{}
	open := func(path string) (uintptr, error) {
		// libSystem re-exports the system dylibs, so one handle finds their symbols; frameworks
		// are opened on their own.
		if path != LibSecurity && path != LibCoreFoundation {
			path = LibSystem
		}
		if h, ok := libs[path]; ok {
			return h, nil
		}
		h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			return 0, fmt.Errorf("darwin: dlopen %s: %w", path, err)
		}
		libs[path] = h
		return h, nil
	}
	lookup := func(name, lib string, optional bool) (uintptr, error) {
		h, err := open(lib)
		if err != nil {
			if optional {
				return 0, nil
			}
			return 0, err
		}
		addr, err := purego.Dlsym(h, name)
		if err != nil || addr == 0 {
			if optional {
				return 0, nil
			}
			return 0, fmt.Errorf("darwin: symbol %s not found in %s: %w", name, lib, err)
		}
		return addr, nil
	}
	for _, f := range Funcs {
		addr, err := lookup(f.Name, f.Lib, f.Optional)
		if err != nil {
			return err
		}
		if addr != 0 {
			purego.RegisterFunc(f.Fn, addr)
		}
	}
	for _, f := range VariadicFuncs {
		addr, err := lookup(f.Name, f.Lib, f.Optional)
		if err != nil {
			return err
		}
		if addr == 0 {
			continue
		}
		if runtime.GOARCH == "arm64" {
			purego.RegisterFunc(f.Arm64, addr)
		} else {
			purego.RegisterFunc(f.Amd64, addr)
		}
	}
	for _, d := range DataSymbols {
		addr, err := lookup(d.Name, d.Lib, d.Optional)
		if err != nil {
			return err
		}
		*d.Addr = addr
	}
	return nil
}

// ReadUint32 reads the 32-bit value at a data symbol's address.
func ReadUint32(addr uintptr) uint32 {
	return *(*uint32)(unsafe.Add(unsafe.Pointer(nil), addr))
}

// ReadUintptr reads the pointer-sized value at a data symbol's address (a const CF object).
func ReadUintptr(addr uintptr) uintptr {
	return *(*uintptr)(unsafe.Add(unsafe.Pointer(nil), addr))
}

// TaskSelf returns mach_task_self_, the task's send right to itself. Load must have succeeded.
func TaskSelf() uint32 { return ReadUint32(MachTaskSelfAddr) }

// BootstrapPort returns bootstrap_port, read when called (a process may change it). Load must
// have succeeded.
func BootstrapPort() uint32 { return ReadUint32(BootstrapPortAddr) }

// CString returns s as a NUL-terminated byte slice for a C const char * argument. s must not
// contain NUL (callers validate names first).
func CString(s string) []byte { return append([]byte(s), 0) }

// SandboxCheck calls sandbox_check(pid, operation, filter, arg) through the binding for this
// architecture. operation may be "" for NULL (used with SANDBOX_FILTER_NONE to ask whether the
// process is sandboxed at all). It returns 0 when allowed, 1 when denied, -1 on error, and -2 when
// the symbol is missing.
func SandboxCheck(pid int32, operation string, filter uint32, arg string) int32 {
	var op, a []byte
	var opPtr, argPtr unsafe.Pointer
	if operation != "" {
		op = CString(operation)
		opPtr = unsafe.Pointer(&op[0])
	}
	if arg != "" {
		a = CString(arg)
		argPtr = unsafe.Pointer(&a[0])
	}
	var r int32
	switch {
	case runtime.GOARCH == "arm64" && SandboxCheckArm64 != nil:
		r = SandboxCheckArm64(pid, opPtr, filter, 0, 0, 0, 0, 0, argPtr)
	case runtime.GOARCH == "amd64" && SandboxCheckAmd64 != nil:
		r = SandboxCheckAmd64(pid, opPtr, filter, argPtr)
	default:
		return -2
	}
	runtime.KeepAlive(op)
	runtime.KeepAlive(a)
	return r
}

// SandboxCheckNoReport returns SANDBOX_CHECK_NO_REPORT's value, or 0 when the symbol is missing.
func SandboxCheckNoReport() uint32 {
	if SandboxCheckNoReportAddr == 0 {
		return 0
	}
	return ReadUint32(SandboxCheckNoReportAddr)
}
