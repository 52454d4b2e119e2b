//go:build !darwin || ios

package darwin

// There is no libSystem here (and purego does not serve iOS without cgo): Load and the other
// loaders fail with an error wrapping errors.ErrUnsupported unless a test installs a linker
// (SetLinker), as the Linux tests do with the libSystem double's.
func systemLinker() Linker { return nil }
