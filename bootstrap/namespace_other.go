//go:build !darwin && !linux

package bootstrap

import (
	"context"
	"errors"

	"github.com/machport/machport/mach"
)

var ns namespace = unsupported{}

type unsupported struct{}

func (unsupported) register(name string, _ *mach.ReceiveRight, _ bool) (func() error, error) {
	return nil, &Error{Op: "bootstrap_register2", Name: name, Err: errors.ErrUnsupported}
}

func (unsupported) checkIn(name string) (*mach.ReceiveRight, error) {
	return nil, &Error{Op: "bootstrap_check_in", Name: name, Err: errors.ErrUnsupported}
}

func (unsupported) lookUp(_ context.Context, op, name string, pid int) (*mach.SendRight, error) {
	return nil, &Error{Op: op, Name: name, PID: pid, Err: errors.ErrUnsupported}
}
