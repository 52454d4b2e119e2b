//go:build !darwin && !linux

package cfport

// There is no CoreFoundation here: the seams of cfport_libsystem.go stay nil, and CreateLocal and
// CreateRemote fail with an error wrapping errors.ErrUnsupported.
