package bootstrap

import (
	"errors"
	"fmt"
	"strings"

	"github.com/machport/machport/mach"
	"github.com/machport/machport/sandboxcheck"
)

// Code is one of launchd's bootstrap return codes (1100–1106). The exported codes are sentinel
// errors: errors.Is(err, bootstrap.ErrNotPrivileged) matches any *Error carrying that code.
type Code int32

// launchd's answers, with bootstrap_strerror's texts.
const (
	// ErrNotPrivileged (1100, "Permission denied"): the sandbox refused the name, or another
	// process owns it.
	ErrNotPrivileged Code = 1100 // BOOTSTRAP_NOT_PRIVILEGED
	// ErrNameInUse (1101, "Service name already exists").
	ErrNameInUse Code = 1101 // BOOTSTRAP_NAME_IN_USE
	// ErrUnknownService (1102, "Unknown service name"): no live server has the name: nobody
	// registered it, its owner withdrew it, or its owner is gone (killed, or its port
	// destroyed), however the look-up learnt that.
	ErrUnknownService Code = 1102 // BOOTSTRAP_UNKNOWN_SERVICE
	// ErrServiceActive (1103, "Service name already exists"): this process already serves the
	// name.
	ErrServiceActive Code = 1103 // BOOTSTRAP_SERVICE_ACTIVE
	// ErrBadCount (1104): too many look-ups in one request.
	ErrBadCount Code = 1104 // BOOTSTRAP_BAD_COUNT
	// ErrNoMemory (1105, "Out of memory").
	ErrNoMemory Code = 1105 // BOOTSTRAP_NO_MEMORY
	// ErrNoChildren (1106).
	ErrNoChildren Code = 1106 // BOOTSTRAP_NO_CHILDREN
)

var codeNames = map[Code][2]string{
	ErrNotPrivileged:  {"BOOTSTRAP_NOT_PRIVILEGED", "Permission denied"},
	ErrNameInUse:      {"BOOTSTRAP_NAME_IN_USE", "Service name already exists"},
	ErrUnknownService: {"BOOTSTRAP_UNKNOWN_SERVICE", "Unknown service name"},
	ErrServiceActive:  {"BOOTSTRAP_SERVICE_ACTIVE", "Service name already exists"},
	ErrBadCount:       {"BOOTSTRAP_BAD_COUNT", "Too many lookups were requested in one request"},
	ErrNoMemory:       {"BOOTSTRAP_NO_MEMORY", "Out of memory"},
	ErrNoChildren:     {"BOOTSTRAP_NO_CHILDREN", ""}, // text: see codeText
}

// IsCode reports whether kr is one of launchd's bootstrap codes.
func IsCode(kr int32) bool { _, ok := codeNames[Code(kr)]; return ok }

// Name returns the C name, such as "BOOTSTRAP_NOT_PRIVILEGED".
func (c Code) Name() string {
	if n, ok := codeNames[c]; ok {
		return n[0]
	}
	return fmt.Sprintf("bootstrap code %d", int32(c))
}

// Text returns launchd's text for the code, as bootstrap_strerror gives it.
func (c Code) Text() string { return codeText(c) }

// Error gives the code, its C name and launchd's text.
func (c Code) Error() string {
	return fmt.Sprintf("%d (%#x) %s: %s", int32(c), int32(c), c.Name(), c.Text())
}

// Error is a failed bootstrap operation. Code is launchd's answer, or 0 when the operation
// failed before or without one; Err is the cause behind it: a *sandboxcheck.NameError when the
// name broke a rule, a mach error when launchd could not be reached, a context error.
type Error struct {
	Op   string // the C call, such as "bootstrap_register2" (in public-only builds the Go call: ops_publiconly.go)
	Name string // the service name, never truncated
	PID  int    // the service's process, for per-PID operations
	Code Code
	Err  error
}

// Error says which call failed for which name, launchd's answer, and the cause. The name is
// quoted once: when the cause quotes it already (the *sandboxcheck.NameError of a name that
// broke a rule), only the cause does, so that a long name does not fill the line twice.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("bootstrap: " + e.Op)
	if !quotesName(e.Err, e.Name) {
		fmt.Fprintf(&b, " %q", e.Name)
	}
	if e.PID != 0 {
		fmt.Fprintf(&b, " (per-PID service of pid %d)", e.PID)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, ": %v", e.Code)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the code and the cause, so that errors.Is and errors.As see both.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Code != 0 {
		errs = append(errs, e.Code)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// quotesName reports whether err's text quotes the service name itself: it holds a
// *sandboxcheck.NameError about that name.
func quotesName(err error, name string) bool {
	var ne *sandboxcheck.NameError
	return errors.As(err, &ne) && ne.Name == name
}

// ErrUnexpectedCode matches an answer of launchd that is none of its bootstrap codes (1100–1106)
// and no Mach or MIG error of the message that carried the request: an *UnexpectedCodeError.
var ErrUnexpectedCode = errors.New("bootstrap: launchd answered with a code outside its bootstrap codes")

// UnexpectedCodeError is an answer of launchd outside its bootstrap codes (1100–1106) and outside
// the Mach and MIG errors of the request's message. CoreFoundation's own logs show such answers
// (141 from bootstrap_register2) in processes outside a GUI login session, whose bootstrap
// namespace is not the user's. It matches ErrUnexpectedCode with errors.Is.
type UnexpectedCodeError struct {
	Code int32 // launchd's answer
}

// Error names the code and what usually causes it.
func (e *UnexpectedCodeError) Error() string {
	return fmt.Sprintf("launchd answered %d (%#x), none of its bootstrap codes (1100–1106): usually "+
		"this process runs outside a GUI login session (over ssh, from cron or a LaunchDaemon, on a "+
		"CI runner no user is logged in to; `launchctl managername` then prints something other "+
		"than Aqua), where launchd takes no names from it; run it in the user's login session, or "+
		"have a launch agent's plist declare the name and use CheckIn", e.Code, uint32(e.Code))
}

// Is makes errors.Is(err, ErrUnexpectedCode) hold.
func (e *UnexpectedCodeError) Is(target error) bool { return target == ErrUnexpectedCode }

// opError turns a kern_return_t from the name service into an *Error.
func opError(op, name string, pid int, kr int32) error {
	if kr == 0 {
		return nil
	}
	e := &Error{Op: op, Name: name, PID: pid}
	switch {
	case IsCode(kr):
		e.Code = Code(kr)
	case isMachError(kr):
		e.Err = mach.ReturnError(kr) // e.g. launchd could not be reached, or did not answer
	default:
		e.Err = &UnexpectedCodeError{Code: kr}
	}
	return e
}

// isMachError reports whether kr is an error of the request's message rather than launchd's
// answer: a mach_msg_return_t, a kern_return_t the kernel defines, or a MIG error (-300..-399).
func isMachError(kr int32) bool {
	if _, ok := mach.ReturnError(kr).(mach.MsgReturn); ok {
		return true
	}
	return mach.KernReturn(kr).Name() != "" || (-400 < kr && kr <= -300)
}

// codeText is bootstrap_strerror's text; a Darwin test compares this table with it. For 1106
// launchd has no text of its own and falls back to the generic Mach error text.
func codeText(c Code) string {
	if c == ErrNoChildren {
		return mach.KernReturn(c).Text()
	}
	if n, ok := codeNames[c]; ok {
		return n[1]
	}
	return mach.KernReturn(c).Text()
}
