//go:build darwin && !ios

package bootstrap

import (
	"context"
	"os"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
)

var ns namespace = launchd{}

// launchd is the real namespace, through libxpc's bootstrap functions and the task's
// bootstrap_port.
type launchd struct{}

func (launchd) register(name string, port *mach.ReceiveRight, perPID bool) (func() error, error) {
	op, pid, flags := "bootstrap_register2", 0, uint64(0)
	if perPID {
		pid, flags = os.Getpid(), abi.BOOTSTRAP_PER_PID_SERVICE
	}
	if err := darwin.Load(); err != nil {
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
	kr := darwin.BootstrapRegister2(darwin.BootstrapPort(), name, uint32(send.Name()), flags)
	_ = send.Close()
	if err := opError(op, name, pid, kr); err != nil {
		return nil, err
	}
	// launchd asked for a dead-name notification on the right: destroying the port, which
	// Registration.Close does next, withdraws the name.
	return func() error { return nil }, nil
}

func (launchd) checkIn(name string) (*mach.ReceiveRight, error) {
	const op = "bootstrap_check_in"
	if err := darwin.Load(); err != nil {
		return nil, &Error{Op: op, Name: name, Err: err}
	}
	var port uint32
	if err := opError(op, name, 0, darwin.BootstrapCheckIn(darwin.BootstrapPort(), name, &port)); err != nil {
		return nil, err
	}
	return mach.AdoptReceive(mach.Name(port)), nil
}

// lookUp runs the look-up, which cannot be interrupted, on its own goroutine, so that a done
// context returns at once; a right that arrives after that is released.
func (launchd) lookUp(ctx context.Context, op, name string, pid int) (*mach.SendRight, error) {
	if err := darwin.Load(); err != nil {
		return nil, &Error{Op: op, Name: name, PID: pid, Err: err}
	}
	type result struct {
		port uint32
		kr   int32
	}
	done := make(chan result, 1)
	go func() {
		var r result
		switch {
		case pid != 0 && darwin.BootstrapLookUp2 != nil:
			r.kr = darwin.BootstrapLookUp2(darwin.BootstrapPort(), name, &r.port, int32(pid), abi.BOOTSTRAP_PER_PID_SERVICE)
		case pid != 0:
			r.kr = abi.KERN_NOT_SUPPORTED
		default:
			r.kr = darwin.BootstrapLookUp(darwin.BootstrapPort(), name, &r.port)
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
