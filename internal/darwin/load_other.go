//go:build !darwin || ios

package darwin

import (
	"errors"
	"fmt"
)

// Load reports that the Darwin bindings are not available on this platform.
func Load() error {
	return fmt.Errorf("darwin: libSystem bindings need GOOS=darwin (not iOS): %w", errors.ErrUnsupported)
}

// TaskSelf is never valid where Load fails; it returns MACH_PORT_NULL.
func TaskSelf() uint32 { return 0 }

// BootstrapPort is never valid where Load fails; it returns MACH_PORT_NULL.
func BootstrapPort() uint32 { return 0 }
