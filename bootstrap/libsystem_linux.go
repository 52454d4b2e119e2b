//go:build linux

package bootstrap

import (
	"context"
	"errors"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/mach"
)

// The seam for machport's own tests: when a test binary calls libsystemdouble.UseDarwinLogic
// (which only code inside this module can), this package switches from the Linux namespace to
// launchd's Darwin logic (namespace_libsystem.go) over the libSystem double, and the double's
// bootstrap calls are served by the Linux namespace, in the role launchd plays on macOS. Nothing
// else ever runs it.
func init() {
	libsystemdouble.OnUse(func() {
		libsystemdouble.SetNamespace(doubleNamespace{ns.(*emulated)})
		ns = launchd{
			load:          func() error { return nil }, // the double is installed already
			bootstrapPort: func() uint32 { return libsystemdouble.ReadUint32(darwin.BootstrapPortAddr) },
		}
	})
}

// doubleNamespace serves the double's bootstrap calls from the Linux namespace. The rights it
// takes and gives are names of this process's IPC space, which the double's calls share with the
// Darwin logic above them.
type doubleNamespace struct{ e *emulated }

func (d doubleNamespace) Register(name string, send uint32, perPID bool) int32 {
	_, err := d.e.publish("bootstrap_register2", name, mach.AdoptSend(mach.Name(send)), perPID)
	return returnCode(err)
}

func (d doubleNamespace) CheckIn(name string) (uint32, int32) {
	port, err := d.e.checkIn(name)
	if err != nil {
		return 0, returnCode(err)
	}
	return uint32(port.Name()), abi.KERN_SUCCESS
}

func (d doubleNamespace) LookUp(name string, pid int) (uint32, int32) {
	op := "bootstrap_look_up"
	if pid != 0 {
		op = "bootstrap_look_up2"
	}
	s, err := d.e.lookUp(context.Background(), op, name, pid)
	if errors.Is(err, errServerGone) {
		// The owner's right died on its way here. launchd holds the right until it learns of
		// the death and answers with it; the kernel copies a dead right out as MACH_PORT_DEAD
		// (ipc_kmsg_copyout_object).
		return uint32(mach.NameDead), abi.KERN_SUCCESS
	}
	if err != nil {
		return 0, returnCode(err)
	}
	return uint32(s.Name()), abi.KERN_SUCCESS
}

// returnCode is the kern_return_t launchd would answer for what the Linux namespace said.
func returnCode(err error) int32 {
	var be *Error
	var k mach.KernReturn
	var m mach.MsgReturn
	var u *UnexpectedCodeError
	switch {
	case err == nil:
		return abi.KERN_SUCCESS
	case errors.As(err, &be) && be.Code != 0:
		return int32(be.Code)
	case errors.As(err, &u):
		return u.Code
	case errors.As(err, &k):
		return int32(k)
	case errors.As(err, &m):
		return int32(m)
	}
	return abi.KERN_FAILURE
}
