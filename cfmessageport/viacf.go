package cfmessageport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/cfport"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/sandboxcheck"
)

// The public-API-only path. Where the private API is left out (iOS by default, macOS with
// -tags machport_publiconly: see internal/darwin/mode.go), launchd's bootstrap calls are
// unavailable, so Listen and Dial cannot register or look up a Mach service themselves. They go
// through CoreFoundation's public CFMessagePort functions instead (package internal/cfport):
// CFMessagePortCreateLocal with the name (group-prefixed in a sandbox), CreateRemote,
// SendRequest, SetDispatchQueue and Invalidate. CF speaks the same protocol, so either side may
// be the native implementation or CF. The Go API is the same; what CF does not expose is not
// available:
//   - a request's sender and a reply's sender (Message.Sender is zero; RequestFrom, and
//     ServerOptions.Require and DialOptions.Require, fail with errors.ErrUnsupported), and
//     whether a message is one-way (Message.OneWay is false);
//   - per-process names (CF's per-process calls are private: a PrivateAPIError);
//   - concurrency: CF serves a port's requests one at a time on its serial queue, and a process
//     sends one request at a time per name: CF shares one remote (and its reply port) per name
//     in a process, and concurrent CFMessagePortSendRequest calls on it may miss their replies
//     (see internal/cfport's Remote), so the requests of every Remote of a name take turns;
//   - the service's death with no request in flight: Invalidated is closed by Close, or when a
//     request finds the service gone (CF's invalidation callback is not bound), and CF hands out
//     its cached remote of a name until it learns the service died, so a Dial right after the
//     server's end may succeed and its first request fail;
//   - ending a wait: Close, or a request's context, ends a request waiting in CF as CF ends the
//     wait of a remote that became invalid (cfport: CFMessagePortInvalidate, then CFRunLoopStop
//     of the waiting thread's run loop); CF's remote of the name is then made anew at the next
//     request, by this Remote and by any other of the name in the process. A send blocked on
//     the service's full queue is not ended so (CF's mach_msg send is no run loop wait): it
//     waits for its timeout or the service's death, and Close waits for it;
//   - launchd's code: CF returns NULL where launchd refused. A sandboxed app that supplied its
//     groups (sandboxcheck.SetApplicationGroups) gets the refusal of a name outside them before
//     CF is asked, as on macOS: bootstrap.ErrNotPrivileged (1100) with the
//     *sandboxcheck.NameError that explains it. Otherwise a refused local name is reported as
//     1100 (what launchd answers for a name held by another process or outside the sandbox's
//     rules) and a failed look-up as bootstrap.ErrUnknownService; CF's log has launchd's code.
//   - pairing (ListenPair, DialPair) registers its own ports with launchd, so it fails with the
//     bootstrap package's PrivateAPIError.
//
// Status: the logic is executed on Linux over the libSystem double's CoreFoundation (the
// native implementation underneath); it builds for darwin and is checked against the SDKs; it
// has not run on iOS or macOS.

// viaCoreFoundation selects the CoreFoundation path for Listen and Dial: true in public-only
// builds. Tests set it (viacf_linux_test.go) to run both paths on Linux.
var viaCoreFoundation = darwin.PublicOnly

// cfCreateLocal and cfCreateRemote name the CF calls in the errors of this path.
const (
	cfCreateLocal  = "CFMessagePortCreateLocal"
	cfCreateRemote = "CFMessagePortCreateRemote"
)

// cfLocal is a Server's CoreFoundation port.
type cfLocal struct {
	port      *cfport.Local
	closeOnce sync.Once
}

// errNoSender is why the options that need a peer's audit token are refused on this path.
var errNoSender = fmt.Errorf("CoreFoundation's CFMessagePort does not give the peer's audit token: %w", errors.ErrUnsupported)

func listenCF(name string, handler Handler, opts *ServerOptions) (*Server, error) {
	if handler == nil {
		return nil, &Error{Op: "listen", Name: name, Err: ErrNilHandler}
	}
	if opts == nil {
		opts = &ServerOptions{}
	}
	switch {
	case opts.PerPID:
		return nil, &Error{Op: "listen", Name: name, Err: &darwin.PrivateAPIError{Op: "cfmessageport.Listen with PerPID"}}
	case opts.Require != nil:
		return nil, &Error{Op: "listen", Name: name, Err: fmt.Errorf("ServerOptions.Require: %w", errNoSender)}
	}
	if err := checkNameCF(cfCreateLocal, sandboxcheck.MachRegister, name); err != nil {
		return nil, &Error{Op: "listen", Name: name, Err: err}
	}
	s := &Server{name: name, handler: handler, done: make(chan struct{}), log: newErrorLog(opts.ErrorLog, name)}
	s.baseCtx, s.cancel = context.WithCancelCause(context.Background())
	l, err := cfport.CreateLocal(name, s.serveCF, nil)
	if err != nil {
		s.cancel(ErrServerClosed)
		return nil, &Error{Op: "listen", Name: name, Err: refusedCF(cfCreateLocal, name, err)}
	}
	s.cf = &cfLocal{port: l}
	return s, nil
}

// checkNameCF does what bootstrap's own check does before it asks launchd: a malformed name
// fails with its *sandboxcheck.NameError, and one outside the groups of a sandboxed process with
// 1100 and the NameError that explains it.
func checkNameCF(op string, sop sandboxcheck.Operation, name string) error {
	err := sandboxcheck.Check(sop, name)
	if err == nil {
		return nil
	}
	code := bootstrap.Code(0)
	if errors.Is(err, sandboxcheck.ErrOutsideGroups) || errors.Is(err, sandboxcheck.ErrEmptyRest) {
		code = bootstrap.ErrNotPrivileged
	}
	return &bootstrap.Error{Op: op, Name: name, Code: code, Err: err}
}

// refusedCF is the error of a CF create call that failed (see the notes above on launchd's code).
func refusedCF(op, name string, err error) error {
	if oe, ok := errors.AsType[*cfport.OpError](err); ok {
		err = oe.Err // the *bootstrap.Error quotes the name; cfport's would quote it again
	}
	switch {
	case errors.Is(err, cfport.ErrNameInProcess):
		// Native Listen says the same of a name this process serves already (bootstrap.CheckIn).
		return &bootstrap.Error{Op: op, Name: name, Code: bootstrap.ErrServiceActive, Err: err}
	case errors.Is(err, cfport.ErrRefused) && op == cfCreateLocal:
		return &bootstrap.Error{Op: op, Name: name, Code: bootstrap.ErrNotPrivileged, Err: err}
	case errors.Is(err, cfport.ErrRefused):
		return &bootstrap.Error{Op: op, Name: name, Err: fmt.Errorf("%w (%w)", bootstrap.ErrUnknownService, err)}
	}
	return err
}

// serveCF is the CF callout's work for one request: the handler runs as on the native path
// (panics recovered, errors logged), with a context that Close cancels.
func (s *Server) serveCF(msgid int32, data []byte) []byte {
	s.inflight.Add(1)
	defer s.inflight.Done()
	if s.closing.Load() {
		return nil
	}
	reply, _ := s.call(s.baseCtx, &Message{MsgID: msgid, Data: data})
	return reply
}

// closeCF invalidates the CF port (which withdraws the name), once, and ends the server.
func (c *cfLocal) closeCF(s *Server) {
	c.closeOnce.Do(func() {
		s.stopping.Store(true)
		c.port.Close()
		s.err = ErrServerClosed
		close(s.done)
	})
}

func (c *cfLocal) close(s *Server) error {
	s.closing.Store(true)
	s.cancel(ErrServerClosed)
	c.closeCF(s)
	s.inflight.Wait()
	return nil
}

// shutdown lets the handlers running finish. CF has no graceful stop: requests not yet handed to
// the callout are not answered (their requesters see the service die).
func (c *cfLocal) shutdown(ctx context.Context, s *Server) error {
	c.closeCF(s)
	idle := make(chan struct{})
	go func() { s.inflight.Wait(); close(idle) }()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return &Error{Op: "shutdown", Name: s.name, Err: ctx.Err()}
	}
}

// cfRemote is a Remote's CoreFoundation port.
type cfRemote struct {
	port *cfport.Remote
}

func dialCF(ctx context.Context, name string, opts *DialOptions, perPID bool) (*Remote, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	switch {
	case perPID || opts.PID != 0:
		return nil, &Error{Op: "dial", Name: name, Err: &darwin.PrivateAPIError{Op: "cfmessageport.DialPID"}}
	case opts.Require != nil:
		return nil, &Error{Op: "dial", Name: name, Err: fmt.Errorf("DialOptions.Require: %w", errNoSender)}
	}
	if err := checkNameCF(cfCreateRemote, sandboxcheck.MachLookUp, name); err != nil {
		return nil, &Error{Op: "dial", Name: name, Err: err}
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: "dial", Name: name, Err: err}
	}
	p, err := cfport.CreateRemote(name, nil)
	if err != nil {
		return nil, &Error{Op: "dial", Name: name, Err: refusedCF(cfCreateRemote, name, err)}
	}
	return &Remote{name: name, invalid: make(chan struct{}), cf: &cfRemote{port: p}}, nil
}

// farFuture is the CF timeout of a request whose context has no deadline: CF takes ten days or
// more as no timeout (__CFMessagePortSendRequest clamps to its own "forever").
const farFuture = 11 * 24 * time.Hour

// requestCF sends one request (or one-way message) with CFMessagePortSendRequest. When ctx ends
// or the Remote is closed first, cfport ends CF's call (Remote.Call) and its result is dropped.
func (c *cfRemote) requestCF(ctx context.Context, r *Remote, op string, msgid int32, data []byte, wantReply bool) ([]byte, error) {
	if r.isInvalid() {
		return nil, &Error{Op: op, Name: r.name, Status: ErrInvalid}
	}
	if err := ctx.Err(); err != nil {
		return nil, r.ctxErr(op, ctx, err)
	}
	timeout := farFuture
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	type result struct {
		reply  []byte
		status cfport.Status
	}
	done := make(chan result, 1)
	go func() {
		reply, st := c.port.Call(ctx.Done(), msgid, data, timeout, wantReply)
		done <- result{reply, st}
	}()
	select {
	case <-r.invalid:
		// Closed meanwhile: the request fails at once, as on the native path, with CF's -5 for
		// a request that waited for its reply (invalidErr). Close ends CF's call (cfport's
		// Remote.Close) before it releases the port.
		return nil, r.invalidErr(op, wantReply)
	case res := <-done:
		if err := ctx.Err(); err != nil && res.status != 0 {
			// The context ended and cfport ended CF's call for it (BecameInvalid, or IsInvalid
			// before CF waited): the failure is the context's, not the service's death.
			return nil, r.ctxErr(op, ctx, err)
		}
		switch st := Status(res.status); st {
		case 0:
			if wantReply && res.reply == nil {
				res.reply = []byte{}
			}
			return res.reply, nil
		case ErrBecameInvalid:
			r.invalidateCF(true)
			return nil, &Error{Op: op, Name: r.name, Status: st}
		case ErrSendTimeout, ErrReceiveTimeout:
			return nil, &Error{Op: op, Name: r.name, Status: st, Err: context.DeadlineExceeded}
		default:
			if !c.port.IsValid() {
				r.invalidateCF(true)
			}
			return nil, &Error{Op: op, Name: r.name, Status: st}
		}
	case <-ctx.Done():
		return nil, r.ctxErr(op, ctx, ctx.Err())
	}
}

func (r *Remote) invalidateCF(died bool) {
	r.invalidOnce.Do(func() {
		r.died.Store(died)
		close(r.invalid)
	})
}

func (c *cfRemote) close(r *Remote) error {
	r.invalidateCF(false)
	return c.port.Close()
}

// requestFromCF is RequestFrom's answer on this path: CF gives no reply's sender.
func (r *Remote) requestFromCF() ([]byte, mach.AuditToken, error) {
	return nil, mach.AuditToken{}, &Error{Op: "request", Name: r.name, Err: fmt.Errorf("RequestFrom: %w", errNoSender)}
}
