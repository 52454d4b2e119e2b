package bootstrap

import (
	"context"
	"os"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
)

// The Darwin namespace through libxpc: the logic that calls internal/darwin's bootstrap
// variables. It has no build tag on purpose: on macOS namespace_darwin.go binds the variables
// to libSystem and installs it; on Linux the tests install a libSystem double behind the same
// variables (internal/darwin/libsystemdouble) and run the behavioural suite through this code.
// Status: builds for darwin/arm64 and darwin/amd64 and is checked against the macOS 13.3 SDK;
// executed on Linux against the double; it has not run on macOS yet.

// launchd is the real namespace: libxpc's bootstrap functions and the task's bootstrap_port.
type launchd struct {
	// load binds the variables (darwin.Load) and reports why it could not.
	load func() error
	// bootstrapPort reads bootstrap_port, the task's send right to launchd, at every call: a
	// process may change it (task_set_special_port, or a test).
	bootstrapPort func() uint32
}

func (l launchd) register(name string, port *mach.ReceiveRight, perPID bool) (func() error, error) {
	op, pid, flags := "bootstrap_register2", 0, uint64(0)
	if perPID {
		pid, flags = os.Getpid(), abi.BOOTSTRAP_PER_PID_SERVICE
	}
	if err := l.load(); err != nil {
		return nil, &Error{Op: op, Name: name, PID: pid, Err: err}
	}
	if darwin.BootstrapRegister2 == nil {
		return nil, &Error{Op: op, Name: name, PID: pid, Err: mach.KernReturn(abi.KERN_NOT_SUPPORTED)}
	}
	// launchd keeps its own copy of the send right; ours is released once it has it.
	send, err := port.MakeSend()
	if err != nil {
		return nil, &Error{Op: op, Name: name, PID: pid, Err: err}
	}
	kr := darwin.BootstrapRegister2(l.bootstrapPort(), name, uint32(send.Name()), flags)
	_ = send.Close()
	if err := opError(op, name, pid, kr); err != nil {
		return nil, err
	}
	// launchd asked for a dead-name notification on the right: destroying the port, which
	// Registration.Close does next, withdraws the name.
	return func() error { return nil }, nil
}

// checkIn is bootstrap_check_in: launchd's job_mig_check_in2 with flags 0 (launchd-842
// src/core.c) hands over the receive right of a name this job declared, and makes a name nobody
// serves into a new service of this process, after the sandbox's mach-register check.
func (l launchd) checkIn(name string) (*mach.ReceiveRight, error) {
	const op = "bootstrap_check_in"
	if err := l.load(); err != nil {
		return nil, &Error{Op: op, Name: name, Err: err}
	}
	var port uint32
	if err := opError(op, name, 0, darwin.BootstrapCheckIn(l.bootstrapPort(), name, &port)); err != nil {
		return nil, err
	}
	return mach.AdoptReceive(mach.Name(port)), nil
}

// lookUp runs the look-up, which cannot be interrupted, on its own goroutine, so that a done
// context returns at once; a right that arrives after that is released.
func (l launchd) lookUp(ctx context.Context, op, name string, pid int) (*mach.SendRight, error) {
	if err := l.load(); err != nil {
		return nil, &Error{Op: op, Name: name, PID: pid, Err: err}
	}
	bp := l.bootstrapPort()
	type result struct {
		port uint32
		kr   int32
	}
	done := make(chan result, 1)
	go func() {
		var r result
		switch {
		case pid != 0 && darwin.BootstrapLookUp2 != nil:
			r.kr = darwin.BootstrapLookUp2(bp, name, &r.port, int32(pid), abi.BOOTSTRAP_PER_PID_SERVICE)
		case pid != 0:
			r.kr = abi.KERN_NOT_SUPPORTED
		default:
			r.kr = darwin.BootstrapLookUp(bp, name, &r.port)
		}
		done <- r
	}()
	select {
	case r := <-done:
		if err := opError(op, name, pid, r.kr); err != nil {
			return nil, err
		}
		return mach.AdoptSend(mach.Name(r.port)), nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.kr == 0 {
				_ = mach.AdoptSend(mach.Name(r.port)).Close()
			}
		}()
		return nil, &Error{Op: op, Name: name, PID: pid, Err: ctx.Err()}
	}
}
