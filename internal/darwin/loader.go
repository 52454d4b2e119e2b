package darwin

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// The loader: which image is opened when, and how the tables above are bound. It is portable on
// purpose: on macOS it runs over purego's dlopen, dlsym and RegisterFunc (load_darwin.go); in
// Linux tests over the libSystem double's recording linker (libsystemdouble/dl.go), so what it
// opens, in which order and on which thread is tested where the project's machines are.
//
// Each image is opened when a binding from it is first needed, never before:
//   - Load opens libSystem, which re-exports every system dylib the tables name (libsystem_kernel,
//     libxpc, libsystem_sandbox, libdispatch). Every Go program on macOS links libSystem already,
//     so this runs no initializer. mach, bootstrap and sandboxcheck's sandbox_check and csops
//     calls need nothing else: a program using only them loads libSystem alone.
//   - LoadCoreFoundation opens CoreFoundation (after libSystem), for internal/cfport's
//     CFMessagePort calls.
//   - LoadSecurity opens Security (after CoreFoundation, whose objects SecTask hands back), for
//     sandboxcheck's entitlement check and package peer's code-signing requirements only.
//
// The thread. Opening CoreFoundation runs its initializer, __CFInitialize, which records the
// calling thread as CF's main thread (`_CFMainPThread = pthread_self();` in CFRuntime.c,
// CF-1153.18; on macOS it does not check pthread_main_np, unlike Windows and the iOS simulator).
// A Go library cannot reach the process's main thread, and the caller's thread may be one that
// ends: a goroutine that exits while locked to its thread takes the thread with it, and CF would
// then name a dead thread whose pthread_t a later thread can reuse. So a framework is opened from
// a fresh goroutine locked to its thread for the call and unlocked afterwards: the thread goes
// back to Go's pool, which never ends an unlocked thread, so CF's main thread lives as long as
// the process. Other goroutines may later run on it; machport does not use CF's main run loop
// (its CFMessagePorts are scheduled on dispatch queues). A program that wants CF's main thread to
// be the real one links CoreFoundation at launch (crypto/x509 does, by //go:cgo_import_dynamic):
// dyld then runs __CFInitialize on the main thread before Go starts, and dlopen runs nothing.

// Linker is the dynamic linker the loader resolves the tables through: purego's on macOS, the
// libSystem double's in Linux tests (see SetLinker).
type Linker interface {
	// Dlopen opens the image at path (RTLD_NOW | RTLD_GLOBAL) and returns its handle.
	Dlopen(path string) (handle uintptr, err error)
	// Dlsym returns the address of the symbol name in the image handle, or an error.
	Dlsym(handle uintptr, name string) (addr uintptr, err error)
	// Bind makes the Go function variable fn points to call the C function at addr.
	Bind(fn any, addr uintptr)
}

// Errors of the loader: an image that cannot be opened, and one that lacks a symbol the
// bindings require. An optional symbol that is missing is no error: its variable stays nil.
var (
	ErrNoImage  = errors.New("darwin: image cannot be opened")
	ErrNoSymbol = errors.New("darwin: required symbol missing")
)

// OS is an Apple system whose images the loader knows: the frameworks are installed under
// different paths on each.
type OS int

// The systems the loader knows.
const (
	MacOS OS = iota // frameworks under Versions/A (the SDK's install names)
	IOS             // flat frameworks: ios-abi.json's install names (also the iOS simulator's)
	numOS
)

// String names the system.
func (o OS) String() string {
	if o == IOS {
		return "iOS"
	}
	return "macOS"
}

// HostOS is the system this binary was built for: GOOS=ios (device and simulator) is IOS,
// anything else MacOS (on Linux only tests open images, through the double).
func HostOS() OS {
	if runtime.GOOS == "ios" {
		return IOS
	}
	return MacOS
}

// image is one of the images the loader opens.
type image int

const (
	imageLibSystem image = iota
	imageCoreFoundation
	imageSecurity
	numImages
)

// imagePaths is what dlopen is given for each image, per system. macOS installs a framework's
// binary under Versions/A; iOS has no versioned bundles, so the binary sits at the bundle's top
// (the install names of ios-abi.json, "install_name_moved"). libSystem is at the same path on
// both. The wrong path would not fail loudly: dlopen fails and every optional binding stays nil.
var imagePaths = [numOS][numImages]string{
	MacOS: {LibSystem, LibCoreFoundation, LibSecurity},
	IOS:   {LibSystem, IOSLibCoreFoundation, IOSLibSecurity},
}

// imageOf returns the image that exports the symbols the SDK places in lib: a framework is its
// own image; libSystem re-exports the system dylibs.
func imageOf(lib string) image {
	switch lib {
	case LibCoreFoundation:
		return imageCoreFoundation
	case LibSecurity:
		return imageSecurity
	}
	return imageLibSystem
}

// ImageOf returns the path the loader opens, on the system it loads for (SetOS), to find the
// symbols the macOS SDK places in lib.
func ImageOf(lib string) string {
	loader.mu.Lock()
	defer loader.mu.Unlock()
	return imagePaths[loader.os][imageOf(lib)]
}

// ImageOn returns the path the loader opens on os to find the symbols the macOS SDK places in lib.
func ImageOn(os OS, lib string) string { return imagePaths[os][imageOf(lib)] }

var loader = struct {
	mu     sync.Mutex
	linker Linker
	os     OS
	done   [numImages]bool
	err    [numImages]error
}{linker: systemLinker(), os: HostOS()}

// Load opens libSystem and binds the entries of Funcs, VariadicFuncs and DataSymbols that it
// exports. It runs once; later calls return the first result. A missing required symbol fails
// it with nothing of libSystem's bound (an error, never a panic); a missing optional one leaves
// its variable nil. It opens no framework: see LoadCoreFoundation and LoadSecurity.
func Load() error { return load(imageLibSystem) }

// LoadCoreFoundation does what Load does, then opens CoreFoundation and binds its entries, once.
// Call it before using a CoreFoundation binding. It opens CoreFoundation on a thread that lives as
// long as the process (see the loader's notes on CF's main thread).
func LoadCoreFoundation() error { return load(imageCoreFoundation) }

// LoadSecurity does what LoadCoreFoundation does, then opens Security and binds its entries
// (SecTask, SecCode, SecRequirement), once. Call it before using a Security binding.
func LoadSecurity() error { return load(imageSecurity) }

func load(img image) error {
	loader.mu.Lock()
	defer loader.mu.Unlock()
	return loadLocked(img)
}

func loadLocked(img image) error {
	if loader.done[img] {
		return loader.err[img]
	}
	var err error
	switch img {
	case imageCoreFoundation:
		err = loadLocked(imageLibSystem) // CF runs on libSystem; cfport also needs libdispatch
	case imageSecurity:
		err = loadLocked(imageCoreFoundation) // SecTask's results are CF objects
	}
	if err == nil {
		err = bind(loader.linker, loader.os, img)
	}
	loader.done[img], loader.err[img] = true, err
	return err
}

// SetLinker makes the loader resolve through l (nil: none, as where there is no libSystem) and
// forgets every binding: the variables of the tables are zeroed and each image is opened again
// at its next use. It is for tests, which install the libSystem double's linker; it must not
// race with callers of the bindings.
func SetLinker(l Linker) {
	loader.mu.Lock()
	defer loader.mu.Unlock()
	loader.linker = l
	forgetLocked()
}

// SetOS makes the loader open the images of os (HostOS unless a test says otherwise) and forgets
// every binding, as SetLinker does. It is for tests, which load iOS's paths through the double.
func SetOS(os OS) {
	loader.mu.Lock()
	defer loader.mu.Unlock()
	loader.os = os
	forgetLocked()
}

// LoaderOS is the system whose images the loader opens: HostOS, unless a test set another
// (SetOS). Code whose rules differ between macOS and iOS asks it, so that tests can run either.
func LoaderOS() OS {
	loader.mu.Lock()
	defer loader.mu.Unlock()
	return loader.os
}

func forgetLocked() {
	loader.done, loader.err = [numImages]bool{}, [numImages]error{}
	for _, f := range Funcs {
		reflect.ValueOf(f.Fn).Elem().SetZero()
	}
	for _, f := range VariadicFuncs {
		reflect.ValueOf(f.Arm64).Elem().SetZero()
		reflect.ValueOf(f.Amd64).Elem().SetZero()
	}
	for _, d := range DataSymbols {
		*d.Addr = 0
	}
}

// bind opens img and binds its entries of the tables. Every symbol is looked up before any is
// bound, so that an image lacking a required symbol leaves all its variables as they were.
func bind(l Linker, os OS, img image) error {
	if l == nil {
		return fmt.Errorf("darwin: libSystem bindings need GOOS=darwin or GOOS=ios (with cgo, which purego needs there): %w", errors.ErrUnsupported)
	}
	path := imagePaths[os][img]
	var h uintptr
	var err error
	if img == imageLibSystem {
		h, err = l.Dlopen(path)
	} else {
		h, err = openOnLastingThread(l, path)
	}
	if err != nil {
		return fmt.Errorf("darwin: dlopen %s: %v: %w", path, err, ErrNoImage)
	}
	type binding struct {
		fn   any
		addr uintptr
	}
	type dataBinding struct {
		dst  *uintptr
		addr uintptr
	}
	var funcs []binding
	var data []dataBinding
	var missing []string
	var firstErr error
	lookup := func(name string, optional bool) uintptr {
		addr, err := l.Dlsym(h, name)
		if err == nil && addr != 0 {
			return addr
		}
		if !optional {
			missing = append(missing, name)
			if firstErr == nil {
				firstErr = err
			}
		}
		return 0
	}
	for _, f := range Funcs {
		if imageOf(f.Lib) == img {
			if addr := lookup(f.Name, f.Optional); addr != 0 {
				funcs = append(funcs, binding{f.Fn, addr})
			}
		}
	}
	for _, f := range VariadicFuncs {
		if imageOf(f.Lib) == img {
			if addr := lookup(f.Name, f.Optional); addr != 0 {
				fn := f.Amd64
				if runtime.GOARCH == "arm64" {
					fn = f.Arm64
				}
				funcs = append(funcs, binding{fn, addr})
			}
		}
	}
	for _, d := range DataSymbols {
		if imageOf(d.Lib) == img {
			if addr := lookup(d.Name, d.Optional); addr != 0 {
				data = append(data, dataBinding{d.Addr, addr})
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("darwin: %s lacks %s (dlsym: %v): %w", path, strings.Join(missing, ", "), firstErr, ErrNoSymbol)
	}
	for _, b := range funcs {
		l.Bind(b.fn, b.addr)
	}
	for _, d := range data {
		*d.dst = d.addr
	}
	return nil
}

// openOnLastingThread runs dlopen on a fresh goroutine locked to its thread for the call, so
// that a framework's initializer never runs on a thread that may end with its goroutine (the
// caller's, when it is locked): see the loader's notes on CF's main thread. The goroutine unlocks
// before it exits, which gives the thread back to Go's pool for the life of the process.
func openOnLastingThread(l Linker, path string) (uintptr, error) {
	type result struct {
		h   uintptr
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		h, err := l.Dlopen(path)
		done <- result{h, err}
	}()
	r := <-done
	return r.h, r.err
}

// ReadUint32 reads the 32-bit value at a data symbol's address. The address is C memory on
// macOS; in Linux tests the double's symbols live in Go memory, hence no checkptr.
//
//go:nocheckptr
func ReadUint32(addr uintptr) uint32 {
	return *(*uint32)(unsafe.Add(unsafe.Pointer(nil), addr))
}

// ReadUintptr reads the pointer-sized value at a data symbol's address (a const CF object).
//
//go:nocheckptr
func ReadUintptr(addr uintptr) uintptr {
	return *(*uintptr)(unsafe.Add(unsafe.Pointer(nil), addr))
}

// TaskSelf returns mach_task_self_, the task's send right to itself, or MACH_PORT_NULL before
// Load has succeeded.
func TaskSelf() uint32 {
	if MachTaskSelfAddr == 0 {
		return 0
	}
	return ReadUint32(MachTaskSelfAddr)
}

// BootstrapPort returns bootstrap_port, read when called (a process may change it), or
// MACH_PORT_NULL before Load has succeeded.
func BootstrapPort() uint32 {
	if BootstrapPortAddr == 0 {
		return 0
	}
	return ReadUint32(BootstrapPortAddr)
}
