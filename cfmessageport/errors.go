package cfmessageport

import (
	"errors"
	"fmt"
	"os"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/sandboxcheck"
)

// Status is one of CFMessagePortSendRequest's return codes. The non-zero ones are sentinel
// errors: errors.Is(err, cfmessageport.ErrBecameInvalid) matches an *Error carrying that status,
// and the two timeouts also match os.ErrDeadlineExceeded.
type Status int32

// CFMessagePort's return codes (CFMessagePort.h).
const (
	// ErrSendTimeout (-1, kCFMessagePortSendTimeout): the request could not be queued in time.
	ErrSendTimeout Status = -1
	// ErrReceiveTimeout (-2, kCFMessagePortReceiveTimeout): no reply in time, and the service
	// is still there.
	ErrReceiveTimeout Status = -2
	// ErrInvalid (-3, kCFMessagePortIsInvalid): the remote was already invalid or closed.
	ErrInvalid Status = -3
	// ErrTransport (-4, kCFMessagePortTransportError): the payload is too big or the send failed.
	ErrTransport Status = -4
	// ErrBecameInvalid (-5, kCFMessagePortBecameInvalidError): the service died while the
	// request waited for its reply.
	ErrBecameInvalid Status = -5
)

var statusNames = map[Status]string{
	ErrSendTimeout:    "kCFMessagePortSendTimeout",
	ErrReceiveTimeout: "kCFMessagePortReceiveTimeout",
	ErrInvalid:        "kCFMessagePortIsInvalid",
	ErrTransport:      "kCFMessagePortTransportError",
	ErrBecameInvalid:  "kCFMessagePortBecameInvalidError",
}

// Error gives the status's number and CF name.
func (s Status) Error() string {
	if n, ok := statusNames[s]; ok {
		return fmt.Sprintf("%d %s", int32(s), n)
	}
	return fmt.Sprintf("CFMessagePort status %d", int32(s))
}

// Is makes both timeouts match os.ErrDeadlineExceeded.
func (s Status) Is(target error) bool {
	return target == os.ErrDeadlineExceeded && (s == ErrSendTimeout || s == ErrReceiveTimeout)
}

// Timeout reports whether the status is a timeout.
func (s Status) Timeout() bool { return s == ErrSendTimeout || s == ErrReceiveTimeout }

// Error is a failed CFMessagePort operation on a named service.
type Error struct {
	Op     string // "request", "send", "dial", "listen", "close"
	Name   string // the service name
	Status Status // CF's return code, or 0 when the failure has none
	Err    error  // the cause: a mach or bootstrap error, a context error
}

// Error says what failed on which service, with CF's status and the cause. The name is quoted
// once: when the cause quotes it already (a look-up's *bootstrap.Error, a name's
// *sandboxcheck.NameError), only the cause does.
func (e *Error) Error() string {
	s := "cfmessageport: " + e.Op
	if !quotesName(e.Err, e.Name) {
		s += fmt.Sprintf(" %q", e.Name)
	}
	if e.Status != 0 {
		s += ": " + e.Status.Error()
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// quotesName reports whether err's text quotes the service name itself: it holds a
// *bootstrap.Error or a *sandboxcheck.NameError about that name.
func quotesName(err error, name string) bool {
	var be *bootstrap.Error
	var ne *sandboxcheck.NameError
	return errors.As(err, &be) && be.Name == name || errors.As(err, &ne) && ne.Name == name
}

// Unwrap returns the status and the cause.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Status != 0 {
		errs = append(errs, e.Status)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Timeout reports whether the operation timed out.
func (e *Error) Timeout() bool { return e.Status.Timeout() }

var (
	// ErrNilHandler is returned by Listen and ListenPair for a nil handler.
	ErrNilHandler = errors.New("nil handler")
	// ErrServerClosed is a Server's Err after Close or Shutdown, and the cause (context.Cause)
	// of the handlers' contexts that Close cancels.
	ErrServerClosed = errors.New("the server is closed")
	// ErrRequesterGone is the cause (context.Cause) of a handler's canceled context when the
	// process that sent the request went away or dropped its reply port.
	ErrRequesterGone = errors.New("the requester is gone")
	// ErrPeerRejected is the cause of a Remote's (or a paired connection's) failures once a
	// reply came from a process that fails its requirement (DialOptions.Require,
	// PairOptions.Require); it wraps the *peer.CheckError that names the failed predicate, so
	// errors.Is also matches that predicate's sentinel (peer.ErrExecutableMismatch, ...).
	ErrPeerRejected = errors.New("the peer fails the requirement")
	// ErrHandlerPanicked is the error a recovered handler panic is logged with.
	ErrHandlerPanicked = errors.New("handler panicked")
)
