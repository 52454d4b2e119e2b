//go:build darwin

package mach

import "github.com/machport/machport/internal/darwin"

// The darwin-only loader: bind libSystem and install the Darwin kernel (kernel_libsystem.go).

func init() {
	if err := darwin.Load(); err != nil {
		sysErr = err
		return
	}
	sys = newDarwinKernel(darwin.TaskSelf())
}
