//go:build darwin && !ios

package darwin

import (
	"fmt"
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
	lib, err := purego.Dlopen(LibSystem, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return fmt.Errorf("darwin: dlopen %s: %w", LibSystem, err)
	}
	for _, f := range Funcs {
		addr, err := purego.Dlsym(lib, f.Name)
		if err != nil || addr == 0 {
			if f.Optional {
				continue
			}
			return fmt.Errorf("darwin: symbol %s not found in %s: %w", f.Name, LibSystem, err)
		}
		purego.RegisterFunc(f.Fn, addr)
	}
	for _, d := range DataSymbols {
		addr, err := purego.Dlsym(lib, d.Name)
		if err != nil || addr == 0 {
			if d.Optional {
				continue
			}
			return fmt.Errorf("darwin: data symbol %s not found in %s: %w", d.Name, LibSystem, err)
		}
		*d.Addr = addr
	}
	return nil
}

// ReadUint32 reads the 32-bit value at a data symbol's address.
func ReadUint32(addr uintptr) uint32 {
	return *(*uint32)(unsafe.Add(unsafe.Pointer(nil), addr))
}

// TaskSelf returns mach_task_self_, the task's send right to itself. Load must have succeeded.
func TaskSelf() uint32 { return ReadUint32(MachTaskSelfAddr) }

// BootstrapPort returns bootstrap_port, read when called (a process may change it). Load must
// have succeeded.
func BootstrapPort() uint32 { return ReadUint32(BootstrapPortAddr) }
