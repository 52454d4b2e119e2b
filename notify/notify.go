package notify

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/machport/machport/mach"
)

var errUnsupported = errors.ErrUnsupported

// ready checks the name and the center before a call that takes a name.
func ready(op, name string) error {
	if strings.IndexByte(name, 0) >= 0 {
		// C would see a shorter name: refuse it rather than post or watch another one.
		return &Error{Op: op, Name: name, Err: StatusInvalidName}
	}
	if err := sys.Ready(); err != nil {
		return &Error{Op: op, Name: name, Err: err}
	}
	return nil
}

// Post posts name (notify_post): every registration for name, in every process of the system on
// macOS and iOS (of this user on Linux), is told, once per registration however many posts
// arrive before it looks (see the package doc on coalescing). It never blocks on a receiver.
func Post(name string) error {
	const op = "notify_post"
	if err := ready(op, name); err != nil {
		return err
	}
	return opError(op, name, 0, sys.Post(name))
}

// Registration is one registration for a name: a token of notifyd's. Its methods are safe for
// concurrent use. Cancel it when done; a registration left behind is released when the process
// ends.
type Registration struct {
	name  string
	token int32
	port  *Port // the port deliveries go to, or nil (RegisterCheck)

	mu        sync.Mutex
	cancelled bool
}

// Name returns the name the registration watches.
func (r *Registration) Name() string { return r.name }

// Token returns notifyd's token: the msgh_id of each message delivered for it on a Port.
func (r *Registration) Token() int32 { return r.token }

// call runs f with the token unless the registration was cancelled.
func (r *Registration) call(op string, f func(token int32) uint32) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancelled {
		return &Error{Op: op, Token: r.token, Err: StatusInvalidToken}
	}
	return opError(op, "", r.token, f(r.token))
}

// Valid reports whether notifyd knows the token (notify_is_valid_token): false once cancelled.
func (r *Registration) Valid() bool { return sys.IsValidToken(r.token) }

// Check reports whether name was posted since the previous Check (notify_check). The first Check
// of a registration says true whatever happened, as notify.h documents ("check is set to true
// the first time notify_check is called for a token"). Several posts between two Checks give one
// true.
func (r *Registration) Check() (bool, error) {
	var c int32
	err := r.call("notify_check", func(tok int32) uint32 { return sys.Check(tok, &c) })
	return c != 0, err
}

// State returns the name's 64-bit state (notify_get_state): one value per name, shared by every
// process.
func (r *Registration) State() (uint64, error) {
	var v uint64
	err := r.call("notify_get_state", func(tok int32) uint32 { return sys.GetState(tok, &v) })
	return v, err
}

// SetState sets the name's state (notify_set_state). It posts nothing: post after it to tell the
// watchers.
func (r *Registration) SetState(v uint64) error {
	return r.call("notify_set_state", func(tok int32) uint32 { return sys.SetState(tok, v) })
}

// Suspend holds the registration's deliveries (notify_suspend): posts made until Resume are
// coalesced into one delivery, made by Resume.
func (r *Registration) Suspend() error { return r.call("notify_suspend", sys.Suspend) }

// Resume ends Suspend (notify_resume), delivering once if name was posted meanwhile.
func (r *Registration) Resume() error { return r.call("notify_resume", sys.Resume) }

// Cancel ends the registration (notify_cancel). When it was the last registration on its Port,
// the port is destroyed with it, as notify.h documents for notify_cancel and libnotify does for
// the ports it made. Safe to call twice.
func (r *Registration) Cancel() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cancelled {
		return nil
	}
	r.cancelled = true
	if r.port == nil {
		return opError("notify_cancel", "", r.token, sys.Cancel(r.token))
	}
	// Under the port's lock, so that a RegisterPort reusing the port never sees it destroyed by
	// this cancel between its check and its call.
	r.port.mu.Lock()
	defer r.port.mu.Unlock()
	st := sys.Cancel(r.token)
	r.port.refs--
	return opError("notify_cancel", "", r.token, st)
}

// RegisterCheck registers name for polling with Check (notify_register_check).
func RegisterCheck(name string) (*Registration, error) {
	const op = "notify_register_check"
	if err := ready(op, name); err != nil {
		return nil, err
	}
	var tok int32
	if err := opError(op, name, 0, sys.RegisterCheck(name, &tok)); err != nil {
		return nil, err
	}
	return &Registration{name: name, token: tok}, nil
}

// Port is a Mach port that notify delivers on: each post of a name registered on it sends one
// empty message (a bare 24-byte header, no body, not complex) whose msgh_id is the
// registration's token. notifyd sends it with a zero timeout, so a post that finds the port's
// queue full (16 messages) is dropped: the messages already queued stand for it.
//
// The port is notify's, not the caller's: it is made by the first RegisterPort with a nil Port
// and destroyed when the last registration on it is cancelled (libnotify's rule for the ports it
// makes). Until then, receive from Right or with Receive; do not Close the right.
type Port struct {
	right *mach.ReceiveRight

	mu   sync.Mutex // held across the calls that add or cancel a registration on the port
	refs int        // registrations on the port; 0: destroyed
}

// Right returns the receive right, for receiving raw messages (mach.Receive, or a port set).
// It is valid until the last registration on the port is cancelled; do not Close it.
func (p *Port) Right() *mach.ReceiveRight { return p.right }

// Receive waits for the next delivery on the port and returns its token, destroying anything
// else that arrives (nothing but notifyd can send to it).
func (p *Port) Receive(ctx context.Context) (int32, error) {
	var m mach.Message
	for {
		if err := mach.Receive(ctx, p.right, &m); err != nil {
			return 0, err
		}
		tok, ok := ParseMessage(&m)
		_ = m.Destroy()
		if ok {
			return tok, nil
		}
	}
}

// ParseMessage returns the token of a message notifyd delivered on a Port, and false for any
// other message: a delivery is exactly a 24-byte header, not complex, with no body, no
// descriptors and no reply port.
func ParseMessage(m *mach.Message) (token int32, ok bool) {
	if m.Size != 24 || m.Complex || len(m.Descriptors) != 0 || len(m.Body) != 0 || !m.Remote.IsNull() {
		return 0, false
	}
	return m.ID, true
}

// RegisterPort registers name for delivery on a Mach port (notify_register_mach_port). With port
// nil notify makes a new port, which the registration's Port returns; with a Port from an earlier
// registration, name is delivered on that port too (NOTIFY_REUSE), told apart by the token.
//
// It takes no port of the caller's on purpose: libnotify, when it talks to notifyd directly (the
// no-dispatch path), silently registers nothing for a port that notifyd did not make while
// returning success (Libnotify notifyd/notify_proc.c, __notify_server_register_mach_port_2).
func RegisterPort(name string, port *Port) (*Registration, error) {
	const op = "notify_register_mach_port"
	if err := ready(op, name); err != nil {
		return nil, err
	}
	var tok int32
	if port == nil {
		var n uint32
		if err := opError(op, name, 0, sys.RegisterMachPort(name, &n, 0, &tok)); err != nil {
			return nil, err
		}
		p := &Port{right: mach.AdoptReceive(mach.Name(n)), refs: 1}
		return &Registration{name: name, token: tok, port: p}, nil
	}
	port.mu.Lock()
	defer port.mu.Unlock()
	if port.refs == 0 {
		return nil, &Error{Op: op, Name: name, Err: StatusInvalidPort} // destroyed with its last registration
	}
	n := uint32(port.right.Name())
	if err := opError(op, name, 0, sys.RegisterMachPort(name, &n, flagReuse, &tok)); err != nil {
		return nil, err
	}
	port.refs++
	return &Registration{name: name, token: tok, port: port}, nil
}

// Port returns the port the registration delivers on, or nil for RegisterCheck's.
func (r *Registration) Port() *Port { return r.port }
