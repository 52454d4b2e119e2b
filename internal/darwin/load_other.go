//go:build !darwin

package darwin

// There is no libSystem here: Load and the other
// loaders fail with an error wrapping errors.ErrUnsupported unless a test installs a linker
// (SetLinker), as the Linux tests do with the libSystem double's.
func systemLinker() Linker { return nil }
