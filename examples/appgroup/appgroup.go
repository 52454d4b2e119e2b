// Package appgroup lets an iOS app and its app extension, in one application group, call each
// other over CFMessagePort through machport. It is written for gomobile: every exported
// identifier uses only the types `gomobile bind` supports (string, []byte, int, int32, bool,
// error, an exported struct pointer and an interface of such methods), so that
// `gomobile bind -target ios` turns it into a framework that Swift calls as AppgroupServe,
// AppgroupCall and so on.
//
// The process that serves calls SetGroups with its application groups (from its
// com.apple.security.application-groups entitlement), then Serve with a name that begins with one
// of them and a period, such as "group.com.example.app.echo" (Name builds one). The other
// process calls SetGroups too, then Call with the same name. A name outside the groups is
// refused with BOOTSTRAP_NOT_PRIVILEGED (1100), and the error says which rule the name broke.
//
// See README.md beside this file for the walk-through from Swift.
package appgroup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/sandboxcheck"
)

// DefaultTimeoutMillis (5 s) is Call's timeout when it is given none (0 or less).
const DefaultTimeoutMillis = 5000

// SetGroups declares this process's application groups, comma-separated, as its
// com.apple.security.application-groups entitlement lists them. On iOS the library cannot read
// the entitlement with public API, so the app (and the extension) pass it in; over the Linux
// emulation this enters the emulated sandbox. Spaces around each group are ignored.
func SetGroups(groups string) error {
	var list []string
	for g := range strings.SplitSeq(groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			list = append(list, g)
		}
	}
	if len(list) == 0 {
		return fmt.Errorf("appgroup: SetGroups needs at least one application group, got %q", groups)
	}
	// sandboxcheck.SetApplicationGroups is variadic today; should issue 21 make it take a
	// []string, this call passes list instead of list... .
	if err := sandboxcheck.SetApplicationGroups(list...); err != nil {
		return fmt.Errorf("appgroup: %w", err)
	}
	return nil
}

// Name returns the service name group + "." + service, after checking offline that a sandboxed
// process holding group may use it (sandboxcheck.ValidateName). Its error explains a bad group
// or name and suggests a valid one.
func Name(group, service string) (string, error) {
	if err := sandboxcheck.ValidateGroup(group); err != nil {
		return "", fmt.Errorf("appgroup: %w", err)
	}
	name := group + "." + service
	if err := sandboxcheck.ValidateName(name, group); err != nil {
		return "", fmt.Errorf("appgroup: %w", err)
	}
	return name, nil
}

// Handler answers the requests that a Server receives. In Swift it is a class that conforms to
// the generated AppgroupHandler protocol. The reply is the returned data; an error (a Swift
// throw) sends CF's "no data" reply, which the caller receives as empty data.
type Handler interface {
	// Handle answers one request: msgid and data are what the caller passed to Call. data is
	// the handler's own copy, so it may keep it.
	Handle(msgid int32, data []byte) ([]byte, error)
}

// Server serves one name until Close.
type Server struct {
	srv  *cfmessageport.Server
	name string
}

// Serve serves name with h, one request at a time in arrival order (as CF does). In the App
// Sandbox, which every iOS app and extension is in, name must begin with one of the groups given
// to SetGroups and a period; another name fails with an error that matches 1100
// (bootstrap.ErrNotPrivileged) and says why.
func Serve(name string, h Handler) (*Server, error) {
	if h == nil {
		return nil, errors.New("appgroup: Serve needs a handler")
	}
	srv, err := cfmessageport.Listen(name, cfmessageport.HandlerFunc(
		func(_ context.Context, req *cfmessageport.Message) ([]byte, error) {
			// req.Data is valid only until the reply is sent, and gomobile hands a []byte
			// argument to Swift without copying it: a Swift handler that kept it would read
			// reused memory later.
			return h.Handle(req.MsgID, bytes.Clone(req.Data))
		}), nil)
	if err != nil {
		return nil, fmt.Errorf("appgroup: %w", err)
	}
	return &Server{srv: srv, name: name}, nil
}

// Name is the name the server serves ("" for a Server that Serve did not make).
func (s *Server) Name() string { return s.name }

// Close withdraws the name and waits for the requests being handled; requests still queued fail
// in their callers at once. Safe to call more than once. It must not be called from Handle,
// which it would wait for.
func (s *Server) Close() error {
	if s.srv == nil {
		// gomobile gives every exported struct a constructor (AppgroupServer() in Swift),
		// which makes a Server that serves nothing.
		return nil
	}
	if err := s.srv.Close(); err != nil {
		return fmt.Errorf("appgroup: %w", err)
	}
	return nil
}

// Call sends msgid and data to the process serving name and returns its reply, waiting at most
// timeoutMillis milliseconds in all (DefaultTimeoutMillis when 0 or less). It fails with an
// error that says why: the name outside the application groups (1100), nobody serving it (1102,
// e.g. the serving process is not running), a timeout (the server is stopped or busy), or the
// server gone while the request waited.
func Call(name string, msgid int32, data []byte, timeoutMillis int) ([]byte, error) {
	if timeoutMillis <= 0 {
		timeoutMillis = DefaultTimeoutMillis
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeoutMillis)*time.Millisecond)
	defer cancel()
	remote, err := cfmessageport.Dial(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("appgroup: %w", err)
	}
	defer remote.Close()
	reply, err := remote.Request(ctx, msgid, data)
	if err != nil {
		return nil, fmt.Errorf("appgroup: %w", err)
	}
	return reply, nil
}

// The codes ErrorCode returns besides launchd's and CF's.
const (
	// CodeNone is nil's code.
	CodeNone = 0
	// CodeOther is the code of an error that carries neither a bootstrap code nor a CF status
	// (gomobile gives every Go error the NSError code 1 too).
	CodeOther = 1
)

// ErrorCode classifies an error that this package returned, for Swift code that branches on it
// (gomobile turns every Go error into an NSError of domain "go" and code 1, with the error's text
// as its localizedDescription; passed back here, it is the Go error again):
//   - launchd's bootstrap code: 1100 (BOOTSTRAP_NOT_PRIVILEGED: the name is outside the
//     application groups, or refused by the sandbox), 1102 (BOOTSTRAP_UNKNOWN_SERVICE: nobody
//     serves the name, e.g. the serving process is not running);
//   - CFMessagePortSendRequest's status: -1 and -2 (send and receive timeouts: the server is
//     suspended, busy or gone silent), -3 (invalid), -4 (transport error), -5 (the server died
//     while the request waited);
//   - CodeNone (0) for nil, CodeOther (1) for anything else.
func ErrorCode(err error) int {
	if err == nil {
		return CodeNone
	}
	var be *bootstrap.Error
	if errors.As(err, &be) && be.Code != 0 {
		return int(be.Code)
	}
	var st cfmessageport.Status
	if errors.As(err, &st) {
		return int(st)
	}
	return CodeOther
}
