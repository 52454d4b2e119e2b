//go:build linux

package libsystemdouble

import (
	"sync"

	"github.com/machport/machport/internal/darwin"
)

// notify(3): libsystem_notify's calls. As launchd's role is played by package bootstrap's Linux
// namespace (bootstrap.go), notifyd's is played by package notify's Linux center, which follows
// notifyd's semantics: a token per registration, per-name 64-bit state shared by every process of
// the user, and on each post an empty Mach message (a bare 24-byte header, msgh_id the token)
// sent with a zero timeout, so that a full queue drops it (Libnotify libnotify.c,
// _internal_send_port); and NOTIFY_REUSE's trap (notifyd/notify_proc.c,
// __notify_server_register_mach_port_2 keeps only a port notifyd made; for any other it registers
// nothing and the call still succeeds). The double adds what libnotify's client checks before
// asking notifyd (notify_client.c): NULL out-parameters, and a center that is not there
// (NOTIFY_STATUS_SERVER_NOT_FOUND, as when notifyd cannot be reached).

// NotifyCenter is notifyd behind the double's notify_* calls: each method is the C call of the
// same name, with its status code.
type NotifyCenter interface {
	Post(name string) uint32
	RegisterCheck(name string, token *int32) uint32
	RegisterMachPort(name string, port *uint32, flags int32, token *int32) uint32
	Check(token int32, check *int32) uint32
	GetState(token int32, state *uint64) uint32
	SetState(token int32, state uint64) uint32
	Suspend(token int32) uint32
	Resume(token int32) uint32
	Cancel(token int32) uint32
	IsValidToken(token int32) bool
}

// NOTIFY_STATUS_* values the double itself returns (<notify.h>; the notify package's tests
// check the full set against the SDKs).
const (
	notifyStatusInvalidToken   = 2
	notifyStatusInvalidPort    = 3
	notifyStatusServerNotFound = 9
	notifyStatusNullInput      = 10
)

var notifyd struct {
	sync.Mutex
	c NotifyCenter
}

// SetNotifyCenter makes c the notifyd behind the notify calls. Package notify calls it when
// UseDarwinLogic switches it to its Darwin logic.
func SetNotifyCenter(c NotifyCenter) {
	notifyd.Lock()
	notifyd.c = c
	notifyd.Unlock()
}

func notifyCenter() NotifyCenter {
	notifyd.Lock()
	defer notifyd.Unlock()
	return notifyd.c
}

func installNotify() {
	const noServer = notifyStatusServerNotFound
	darwin.NotifyPost = func(name string) uint32 {
		if c := notifyCenter(); c != nil {
			return c.Post(name)
		}
		return noServer
	}
	darwin.NotifyRegisterCheck = func(name string, token *int32) uint32 {
		c := notifyCenter()
		switch {
		case token == nil:
			return notifyStatusNullInput
		case c == nil:
			return noServer
		}
		return c.RegisterCheck(name, token)
	}
	darwin.NotifyRegisterMachPort = func(name string, port *uint32, flags int32, token *int32) uint32 {
		c := notifyCenter()
		switch {
		case port == nil: // notify_client.c notify_register_mach_port
			return notifyStatusInvalidPort
		case token == nil:
			return notifyStatusNullInput
		case c == nil:
			return noServer
		}
		return c.RegisterMachPort(name, port, flags, token)
	}
	withToken := func(f func(c NotifyCenter) uint32) uint32 {
		if c := notifyCenter(); c != nil {
			return f(c)
		}
		return notifyStatusInvalidToken // no notifyd gave a token
	}
	darwin.NotifyCheck = func(token int32, check *int32) uint32 {
		if check == nil {
			return notifyStatusNullInput
		}
		return withToken(func(c NotifyCenter) uint32 { return c.Check(token, check) })
	}
	darwin.NotifyGetState = func(token int32, state *uint64) uint32 {
		if state == nil {
			return notifyStatusNullInput
		}
		return withToken(func(c NotifyCenter) uint32 { return c.GetState(token, state) })
	}
	darwin.NotifySetState = func(token int32, state uint64) uint32 {
		return withToken(func(c NotifyCenter) uint32 { return c.SetState(token, state) })
	}
	darwin.NotifySuspend = func(token int32) uint32 {
		return withToken(func(c NotifyCenter) uint32 { return c.Suspend(token) })
	}
	darwin.NotifyResume = func(token int32) uint32 {
		return withToken(func(c NotifyCenter) uint32 { return c.Resume(token) })
	}
	darwin.NotifyCancel = func(token int32) uint32 {
		return withToken(func(c NotifyCenter) uint32 { return c.Cancel(token) })
	}
	darwin.NotifyIsValidToken = func(token int32) bool {
		c := notifyCenter()
		return c != nil && c.IsValidToken(token)
	}
}
