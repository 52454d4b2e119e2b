//go:build linux

package cfport

import "github.com/machport/machport/internal/darwin/libsystemdouble"

// The seam for machport's own tests: once a test binary installs the libSystem double's
// CoreFoundation (libsystemdouble.InstallCoreFoundation), cfport_libsystem.go runs over it as it
// runs over CoreFoundation on Apple systems; until then it fails with errors.ErrUnsupported.
func init() {
	loadCoreFoundation = libsystemdouble.LoadCoreFoundation
	newCallback = libsystemdouble.NewCallback
}
