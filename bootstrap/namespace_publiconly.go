package bootstrap

import (
	"context"

	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
)

// PrivateAPIError is what Register, CheckIn, LookUp and LookUpPID fail with (wrapped in an *Error)
// in a public-API-only build: iOS without -tags machport_private, or macOS with
// -tags machport_publiconly. launchd's bootstrap calls are not public API on iOS (the SDK has no
// bootstrap.h) and bootstrap_register2 is private on macOS too. It wraps errors.ErrUnsupported.
// cfmessageport's Listen and Dial work in those builds: they go through CoreFoundation.
type PrivateAPIError = darwin.PrivateAPIError

// publicOnly is the namespace of a public-only build: every operation fails with a
// PrivateAPIError before anything is called. namespace_darwin.go installs it by a constant, so
// that launchd's logic (namespace_libsystem.go), which spells the private names, is not linked;
// Linux tests install it through the double's seam (libsystem_linux.go).
type publicOnly struct{}

func (publicOnly) register(name string, _ *mach.ReceiveRight, _ bool) (func() error, error) {
	return nil, &Error{Op: opRegister, Name: name, Err: &darwin.PrivateAPIError{Op: "bootstrap.Register"}}
}

func (publicOnly) checkIn(name string) (*mach.ReceiveRight, error) {
	return nil, &Error{Op: opCheckIn, Name: name, Err: &darwin.PrivateAPIError{Op: "bootstrap.CheckIn"}}
}

func (publicOnly) lookUp(_ context.Context, op, name string, pid int) (*mach.SendRight, error) {
	goOp := "bootstrap.LookUp"
	if pid != 0 {
		goOp = "bootstrap.LookUpPID"
	}
	return nil, &Error{Op: op, Name: name, PID: pid, Err: &darwin.PrivateAPIError{Op: goOp}}
}
