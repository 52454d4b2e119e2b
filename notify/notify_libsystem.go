package notify

import (
	"fmt"

	"github.com/machport/machport/internal/darwin"
)

// The Darwin center: libsystem_notify's notify_* calls through internal/darwin's variables. It
// has no build tag on purpose: on macOS and iOS center_darwin.go binds the variables to libSystem
// and installs it; on Linux the tests install the libSystem double behind the same variables
// (internal/darwin/libsystemdouble/notify.go), whose notifyd is the Linux center, and run the
// package's tests through this code. The calls are public API on macOS and iOS (the public table
// of bindings.go), so public-only builds have them.
// Status: builds for darwin/arm64, darwin/amd64 and ios/arm64; checked against the macOS 13.3 and
// iOS 17.5 SDK facts; executed on Linux against the double; not run on macOS or iOS.
type libnotify struct {
	// load binds the variables (darwin.Load).
	load func() error
}

func (l libnotify) Ready() error {
	if err := l.load(); err != nil {
		return err
	}
	if darwin.NotifyPost == nil || darwin.NotifyRegisterMachPort == nil || darwin.NotifyCancel == nil {
		return fmt.Errorf("libsystem_notify's functions are missing: %w", errUnsupported)
	}
	return nil
}

func (libnotify) Post(name string) uint32 { return darwin.NotifyPost(name) }

func (libnotify) RegisterCheck(name string, token *int32) uint32 {
	return darwin.NotifyRegisterCheck(name, token)
}

// RegisterMachPort is notify_register_mach_port. With NOTIFY_REUSE, notifyd keeps the port only
// if it made it (Libnotify notifyd/notify_proc.c, __notify_server_register_mach_port_2):
// package notify passes only ports that an earlier registration without it returned.
func (libnotify) RegisterMachPort(name string, port *uint32, flags int32, token *int32) uint32 {
	return darwin.NotifyRegisterMachPort(name, port, flags, token)
}

func (libnotify) Check(token int32, check *int32) uint32 { return darwin.NotifyCheck(token, check) }

func (libnotify) GetState(token int32, state *uint64) uint32 {
	return darwin.NotifyGetState(token, state)
}

func (libnotify) SetState(token int32, state uint64) uint32 {
	return darwin.NotifySetState(token, state)
}

func (libnotify) Suspend(token int32) uint32 { return darwin.NotifySuspend(token) }
func (libnotify) Resume(token int32) uint32  { return darwin.NotifyResume(token) }
func (libnotify) Cancel(token int32) uint32  { return darwin.NotifyCancel(token) }

func (libnotify) IsValidToken(token int32) bool {
	if darwin.NotifyIsValidToken == nil {
		return token != tokenInvalid
	}
	return darwin.NotifyIsValidToken(token)
}
