// Package cfport drives CoreFoundation's own CFMessagePort from Go through the purego bindings of
// internal/darwin. It is the reference peer that the interop tests hold machport's native
// implementation (package cfmessageport) against, in both directions: a Local is a
// CFMessagePortCreateLocal service, a Remote a CFMessagePortCreateRemote client.
//
// A Local's callbacks run on its own serial dispatch queue (CFMessagePortSetDispatchQueue), so no
// run loop is needed. Remote.Request calls CFMessagePortSendRequest, which runs the calling
// thread's run loop in a private mode while it waits; the goroutine stays locked to its thread
// for the call.
//
// It uses only CoreFoundation's public CFMessagePort functions (the per-process variants aside,
// which public-only builds leave out), so package cfmessageport's public-API-only path (the
// default on iOS) runs on it. macOS and iOS (GOOS=ios, with cgo for purego) have CoreFoundation;
// in Linux tests the libSystem double's CoreFoundation stands in for it once a test installs it
// (cfport_linux.go); elsewhere CreateLocal and CreateRemote return an error wrapping
// errors.ErrUnsupported.
//
// Status: builds for darwin/arm64 and darwin/amd64; its bindings are checked against the macOS
// 13.3 SDK; not run on macOS yet.
package cfport

import (
	"errors"
	"fmt"
	"time"
)

// Status is a CFMessagePortSendRequest result (CFMessagePort.h; checked against the SDK).
type Status int32

// CF's request statuses.
const (
	Success        Status = 0  // kCFMessagePortSuccess
	SendTimeout    Status = -1 // kCFMessagePortSendTimeout
	ReceiveTimeout Status = -2 // kCFMessagePortReceiveTimeout
	IsInvalid      Status = -3 // kCFMessagePortIsInvalid
	TransportError Status = -4 // kCFMessagePortTransportError
	BecameInvalid  Status = -5 // kCFMessagePortBecameInvalidError
)

var statusNames = map[Status]string{
	Success:        "kCFMessagePortSuccess",
	SendTimeout:    "kCFMessagePortSendTimeout",
	ReceiveTimeout: "kCFMessagePortReceiveTimeout",
	IsInvalid:      "kCFMessagePortIsInvalid",
	TransportError: "kCFMessagePortTransportError",
	BecameInvalid:  "kCFMessagePortBecameInvalidError",
}

// String returns the status's CF name, or its number.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("CFMessagePort status %d", int32(s))
}

// Error makes a Status an error; Success is never returned as one.
func (s Status) Error() string { return "cfport: " + s.String() }

// Handler answers a request to a Local: the msgid and a copy of the request's bytes (empty for
// CF's "no data") in, the reply out. A nil reply sends CF's "no data" reply. A panic is recovered
// and answered with no data.
type Handler func(msgid int32, data []byte) []byte

// Options tune CreateLocal and CreateRemote.
type Options struct {
	// PerPID makes a per-process service (CFMessagePortCreatePerProcessLocal), or, with PID,
	// looks one up (CFMessagePortCreatePerProcessRemote).
	PerPID bool
	// PID is the process whose per-process service a Remote calls.
	PID int
}

var (
	// ErrRefused is returned when CoreFoundation returns NULL from a create call. CF logs the
	// reason (for a local port, launchd's answer, e.g. "bootstrap_register(): failed 1100").
	ErrRefused = errors.New("CoreFoundation refused to create the port")
	// ErrNameInProcess is returned when this process already has a local port of that name: CF
	// hands the existing port back instead of registering a new one.
	ErrNameInProcess = errors.New("this process already has a local CFMessagePort of that name")
	// ErrClosed is returned by calls on a closed port.
	ErrClosed = errors.New("the port is closed")
)

// OpError is a failed cfport call.
type OpError struct {
	Op   string // "create local", "create remote", ...
	Name string
	Err  error
}

func (e *OpError) Error() string { return fmt.Sprintf("cfport: %s %q: %v", e.Op, e.Name, e.Err) }

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// seconds converts a timeout to CF's CFTimeInterval; CF treats ten days or more as no timeout.
func seconds(d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return d.Seconds()
}
