package notify

import (
	"fmt"
	"strconv"
)

// Status is a notify(3) status code (NOTIFY_STATUS_*, <notify.h>). Each non-zero Status is an
// error and its own errors.Is sentinel: errors.Is(err, notify.StatusInvalidToken).
type Status uint32

// The NOTIFY_STATUS_* codes, with their values in the macOS 13.3 and iOS 17.5 SDKs (checked by
// the tests against both SDKs' facts).
const (
	StatusOK             Status = 0       // NOTIFY_STATUS_OK
	StatusInvalidName    Status = 1       // NOTIFY_STATUS_INVALID_NAME
	StatusInvalidToken   Status = 2       // NOTIFY_STATUS_INVALID_TOKEN
	StatusInvalidPort    Status = 3       // NOTIFY_STATUS_INVALID_PORT
	StatusInvalidFile    Status = 4       // NOTIFY_STATUS_INVALID_FILE
	StatusInvalidSignal  Status = 5       // NOTIFY_STATUS_INVALID_SIGNAL
	StatusInvalidRequest Status = 6       // NOTIFY_STATUS_INVALID_REQUEST
	StatusNotAuthorized  Status = 7       // NOTIFY_STATUS_NOT_AUTHORIZED
	StatusOptDisable     Status = 8       // NOTIFY_STATUS_OPT_DISABLE
	StatusServerNotFound Status = 9       // NOTIFY_STATUS_SERVER_NOT_FOUND
	StatusNullInput      Status = 10      // NOTIFY_STATUS_NULL_INPUT
	StatusFailed         Status = 1000000 // NOTIFY_STATUS_FAILED
)

// NOTIFY_REUSE and NOTIFY_TOKEN_INVALID (<notify.h>).
const (
	flagReuse    = 1
	tokenInvalid = -1
)

var statusText = map[Status]string{
	StatusOK:             "success",
	StatusInvalidName:    "invalid name",
	StatusInvalidToken:   "invalid token",
	StatusInvalidPort:    "invalid port",
	StatusInvalidFile:    "invalid file",
	StatusInvalidSignal:  "invalid signal",
	StatusInvalidRequest: "invalid request",
	StatusNotAuthorized:  "not authorized",
	StatusOptDisable:     "notifications disabled (NOTIFY_STATUS_OPT_DISABLE)",
	StatusServerNotFound: "notifyd not found",
	StatusNullInput:      "null input",
	StatusFailed:         "failed",
}

// Error returns the code's meaning and value.
func (s Status) Error() string {
	if t, ok := statusText[s]; ok {
		return "notify: " + t + " (" + strconv.FormatUint(uint64(s), 10) + ")"
	}
	return "notify: status " + strconv.FormatUint(uint64(s), 10)
}

// Error is the error of a notify call: the C function, the name or token it was given, and the
// cause (a Status, or an error of the platform such as one wrapping errors.ErrUnsupported).
type Error struct {
	Op    string // the notify(3) function, such as "notify_post"
	Name  string // the notification name, when the call took one
	Token int32  // the registration token, when the call took one (else 0)
	Err   error
}

// Error names the call, its name or token, and the cause.
func (e *Error) Error() string {
	switch {
	case e.Name != "":
		return fmt.Sprintf("%s %q: %v", e.Op, e.Name, e.Err)
	case e.Token != 0:
		return fmt.Sprintf("%s (token %d): %v", e.Op, e.Token, e.Err)
	}
	return e.Op + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// opError returns nil for StatusOK, else an *Error.
func opError(op, name string, token int32, st uint32) error {
	if st == uint32(StatusOK) {
		return nil
	}
	return &Error{Op: op, Name: name, Token: token, Err: Status(st)}
}
