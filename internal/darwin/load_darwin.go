//go:build darwin

package darwin

import "github.com/ebitengine/purego"

// The darwin-only primitives under the loader (loader.go): dyld's dlopen and dlsym, and purego's
// RegisterFunc, which makes a Go func variable call a C function.

func systemLinker() Linker { return puregoLinker{} }

type puregoLinker struct{}

func (puregoLinker) Dlopen(path string) (uintptr, error) {
	return purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_GLOBAL)
}

func (puregoLinker) Dlsym(handle uintptr, name string) (uintptr, error) {
	return purego.Dlsym(handle, name)
}

func (puregoLinker) Bind(fn any, addr uintptr) { purego.RegisterFunc(fn, addr) }
