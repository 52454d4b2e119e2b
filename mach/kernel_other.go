//go:build !darwin && !linux

package mach

import (
	"errors"
	"fmt"
	"runtime"
)

func init() {
	sysErr = fmt.Errorf("no Mach kernel on %s (the Linux emulation is not built yet): %w", runtime.GOOS, errors.ErrUnsupported)
}
