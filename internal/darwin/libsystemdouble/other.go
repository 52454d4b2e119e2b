//go:build !linux

// The libSystem double runs on Linux only, where the emulation it delegates to exists; elsewhere
// the package is empty, so that `go build ./...` for any platform builds it.
package libsystemdouble
