//go:build linux

package libsystemdouble

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"syscall"
	"unsafe"

	"github.com/machport/machport/internal/darwin"
)

// Linker is a dynamic linker over the double, for internal/darwin's loader (darwin.SetLinker):
// it answers dlopen and dlsym as dyld would on a Mac whose images export every symbol of
// darwin's tables, binds a function variable to the double's implementation of its symbol, and
// records which images were opened, in order and from which thread. With it the loader runs on
// Linux as it runs over purego on macOS.
//
// Its images are the ones macOS has: CoreFoundation and Security are frameworks of their own;
// each system dylib (libsystem_kernel, libxpc, libsystem_sandbox, libdispatch) exports its
// symbols and libSystem re-exports them all. A function is the double's implementation that
// Install binds (the Mach calls so far); a function the double does not implement is exported
// too, as a stub that panics with its name when called. A data symbol is the double's (such as
// mach_task_self_) or a zeroed cell of its C type. Hide and FailOpen take a symbol or an image
// away, as on a Mac whose system lacks it.
type Linker struct {
	mu      sync.Mutex
	images  map[string]map[string]uintptr // image path -> symbol -> address
	hidden  map[string]bool               // symbols Dlsym does not find
	noOpen  map[string]error              // images Dlopen fails to open
	handles []string                      // handle i+1 is the image handles[i]
	opens   []Open
}

// Open is one dlopen call the Linker answered.
type Open struct {
	Path   string
	Thread int // the OS thread that called dlopen (gettid)
}

// exports is what every Linker exports: built once, from what Install bound.
type exports struct {
	images map[string]map[string]uintptr
	funcs  map[uintptr]map[reflect.Type]reflect.Value // implementations by address and Go type
	cells  [][]byte                                   // the memory of the data symbols without a value of the double's
}

var doubleExports = sync.OnceValue(func() *exports {
	Install()
	e := &exports{images: map[string]map[string]uintptr{}, funcs: map[uintptr]map[reflect.Type]reflect.Value{}}
	next := uintptr(0x1000) // function addresses are tokens: Bind maps them back, nothing reads them
	export := func(lib, name string, addr uintptr) {
		for _, path := range []string{lib, darwin.ImageOn(darwin.MacOS, lib), darwin.ImageOn(darwin.IOS, lib)} {
			if e.images[path] == nil {
				e.images[path] = map[string]uintptr{}
			}
			e.images[path][name] = addr
		}
	}
	implement := func(addr uintptr, name string, fn any) {
		v := reflect.ValueOf(fn).Elem()
		impl := reflect.ValueOf(v.Interface())
		if impl.IsNil() {
			impl = reflect.MakeFunc(v.Type(), func([]reflect.Value) []reflect.Value {
				panic("libsystemdouble: " + name + " is exported but the double does not implement it")
			})
		}
		if e.funcs[addr] == nil {
			e.funcs[addr] = map[reflect.Type]reflect.Value{}
		}
		e.funcs[addr][v.Type()] = impl
	}
	for _, f := range darwin.Funcs {
		next += 0x10
		export(f.Lib, f.Name, next)
		implement(next, f.Name, f.Fn)
	}
	for _, f := range darwin.VariadicFuncs {
		next += 0x10
		export(f.Lib, f.Name, next)
		implement(next, f.Name, f.Arm64)
		implement(next, f.Name, f.Amd64)
	}
	for _, d := range darwin.DataSymbols {
		addr := *d.Addr
		if addr == 0 {
			cell := make([]byte, reflect.TypeOf(d.Type).Size())
			e.cells = append(e.cells, cell)
			addr = uintptr(unsafe.Pointer(unsafe.SliceData(cell)))
		}
		export(d.Lib, d.Name, addr)
	}
	return e
})

// NewLinker returns a Linker that has opened nothing. The first call installs the double
// (Install) and takes its implementations from the variables Install bound, so call it before
// darwin.SetLinker zeroes them.
func NewLinker() *Linker {
	e := doubleExports()
	l := &Linker{images: map[string]map[string]uintptr{}, hidden: map[string]bool{}, noOpen: map[string]error{}}
	for path, syms := range e.images {
		l.images[path] = syms // shared and never written: Hide records what is taken away
	}
	return l
}

// Hide makes Dlsym fail for name in every image, as on a Mac whose system lacks the symbol.
func (l *Linker) Hide(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.hidden[name] = true
}

// FailOpen makes Dlopen of path fail with err.
func (l *Linker) FailOpen(path string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.noOpen[path] = err
}

// Opened returns the paths dlopen was called with, in order.
func (l *Linker) Opened() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var paths []string
	for _, o := range l.opens {
		paths = append(paths, o.Path)
	}
	return paths
}

// Opens returns the dlopen calls, in order, with the thread of each.
func (l *Linker) Opens() []Open {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.opens)
}

// Dlopen records the call and returns the image's handle: the same handle for the same image,
// as dyld reference-counts an image instead of loading it twice.
func (l *Linker) Dlopen(path string) (uintptr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.opens = append(l.opens, Open{Path: path, Thread: syscall.Gettid()})
	if err := l.noOpen[path]; err != nil {
		return 0, err
	}
	if l.images[path] == nil {
		return 0, fmt.Errorf("dlopen(%s, 0x000A): image not found", path)
	}
	if i := slices.Index(l.handles, path); i >= 0 {
		return uintptr(i + 1), nil
	}
	l.handles = append(l.handles, path)
	return uintptr(len(l.handles)), nil
}

// Dlsym returns the address of name in the image handle, as dyld words its failures.
func (l *Linker) Dlsym(handle uintptr, name string) (uintptr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if handle == 0 || handle > uintptr(len(l.handles)) {
		return 0, fmt.Errorf("dlsym(%#x, %s): invalid handle", handle, name)
	}
	addr, ok := l.images[l.handles[handle-1]][name]
	if !ok || l.hidden[name] {
		return 0, fmt.Errorf("dlsym(%#x, %s): symbol not found", handle, name)
	}
	return addr, nil
}

// Bind sets the function variable fn points to to the double's implementation of the symbol at
// addr. A variable whose type is not the symbol's binding panics, as purego would call a C
// function with the wrong arguments.
func (l *Linker) Bind(fn any, addr uintptr) {
	v := reflect.ValueOf(fn).Elem()
	impl, ok := doubleExports().funcs[addr][v.Type()]
	if !ok {
		panic(fmt.Sprintf("libsystemdouble: Bind(%s, %#x): no function of that type at that address", v.Type(), addr))
	}
	v.Set(impl)
}
