package cfmessageport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/peer"
)

// PairMsgID is the msgid of the names handshake's request ('pair').
const PairMsgID int32 = 0x70616972

// PairProbeMsgID is the msgid of the names handshake's probe ('prob'): the server's request to
// the client's name, whose reply proves that the process that sent the handshake serves that
// name. Any reply does (a CF client's callback may answer it as it likes); a Go connection
// answers it with no data, without calling its handler.
const PairProbeMsgID int32 = 0x70726f62

// The fast handshake: a request and its reply, raw Mach messages told apart by msgh_id.
const (
	pairFastID      int32 = 0x6d706672 // 'mpfr'
	pairFastReplyID int32 = 0x6d706673 // 'mpfs'
)

// pairFastMagic is the fast handshake's body: with the header and one port descriptor the
// message is 48 bytes, under the 60 bytes below which CF drops a request as corrupt.
var pairFastMagic = []byte("mpair/1\x00")

// DefaultPairPrefix is the prefix of the names the names handshake registers when
// PairOptions.Prefix is empty.
const DefaultPairPrefix = "com.machport.pair"

var (
	// ErrPairRefused is returned by DialPair when the service refused the handshake (it is not a
	// pairing service, or its backlog of connections not yet accepted is full).
	ErrPairRefused = errors.New("the service refused to pair")
	// ErrPeerClosed is a connection's error once the peer closed it or died.
	ErrPeerClosed = errors.New("the peer closed the connection")
	// ErrConnClosed is a connection's error once it was closed on this side.
	ErrConnClosed = errors.New("the connection is closed")
)

// errNoFastPath says that the service dropped the fast handshake: it may still pair by names.
var errNoFastPath = errors.New("the service does not take the fast handshake")

// PairOptions tune ListenPair and DialPair.
type PairOptions struct {
	// Prefix is the prefix of the names the names handshake registers, made unique with
	// bootstrap.RegisterUnique (which puts the application group in front when the process is
	// sandboxed). Empty means the service's name followed by ".peer" on the client and ".conn"
	// on the server, so that the names share the service's application-group prefix (a
	// sandboxed peer may look up only such names); DefaultPairPrefix when that would be too
	// long for a service name.
	Prefix string
	// NamesOnly skips the fast handshake and always pairs by names.
	NamesOnly bool
	// Concurrency is how many requests a connection's handler runs at once (see ServerOptions).
	Concurrency int
	// Backlog is how many paired connections may wait for Accept; more are refused. 0 means 64.
	Backlog int
	// ErrorLog receives the listener's and its connections' handler errors, recovered panics
	// and dropped messages (see ServerOptions.ErrorLog). nil means slog.Default().
	ErrorLog *slog.Logger
	// Require, when set, is what the other side must meet (see package peer). On ListenPair's
	// side, a client that fails it is dropped as ServerOptions.Require drops it (its handshakes
	// and plain requests alike). On DialPair's side, the service's answer to the handshake is
	// checked, and a service that fails it is refused with an error wrapping ErrPeerRejected.
	// On both sides the connection's replies are checked as DialOptions.Require checks them.
	Require *peer.Requirement
}

// prefix returns the prefix for the names made for a connection to service on one side.
func (o *PairOptions) prefix(service, side string) string {
	switch {
	case o.Prefix != "":
		return o.Prefix
	case len(service)+len(side)+uniqueSuffixLen <= bootstrapMaxName:
		return service + side
	default:
		return DefaultPairPrefix
	}
}

// uniqueSuffixLen is the length of what RegisterUnique appends: a period and 16 hex digits.
const uniqueSuffixLen = 17

// handshakeTimeout bounds the server side of a names handshake (looking the client's name up).
const handshakeTimeout = 2 * time.Second

// Limits of a listener: how many requests it serves at once, and how many of those may be names
// handshakes. A handshake beyond the limit is refused rather than waited for, so that peers
// naming services that never answer cannot stall the listener's receive loop.
const (
	listenerConcurrency = 64
	maxHandshakes       = 32
)

// Conn is one two-way connection, the same on both sides: Request and Send call the peer, and the
// handler given to ListenPair or DialPair answers the requests the peer starts (Message.Conn
// says which connection). It is safe for many goroutines at once.
//
// Limits: a handler that calls its own connection's Request while the peer's handler calls back
// waits forever when both serve one request at a time (set PairOptions.Concurrency above 1 for
// such exchanges). In the names handshake the server proves that the sender of the handshake
// serves the name it gave before the connection opens: it sends that name a probe
// (PairProbeMsgID), and the reply must come from the handshake's sender; so a process that knows
// another connection's name cannot make the server open a connection to it.
type Conn struct {
	local     *Server
	remote    *Remote
	peer      mach.AuditToken
	localName string // "" for a fast-handshake connection

	done    chan struct{}
	err     error // set before done is closed
	closing chan struct{}
	closed  chan struct{}
}

// newConn starts a connection serving local (already receiving, not yet served) and calling
// remote; messages on local from anyone but peer are dropped.
func newConn(name string, port *mach.ReceiveRight, reg *bootstrap.Registration, remote *Remote,
	peer mach.AuditToken, handler Handler, opts *PairOptions) *Conn {
	c := &Conn{remote: remote, peer: peer, localName: name, done: make(chan struct{}),
		closing: make(chan struct{}), closed: make(chan struct{})}
	remote.require = opts.Require
	h := HandlerFunc(func(ctx context.Context, req *Message) ([]byte, error) {
		if req.MsgID == PairProbeMsgID {
			return nil, nil // the names handshake's probe: the reply itself is the answer
		}
		req.Conn = c
		return handler.ServeMessage(ctx, req)
	})
	c.local = startServer(name, port, reg, h, &ServerOptions{Concurrency: opts.Concurrency, ErrorLog: opts.ErrorLog}, &c.peer, nil)
	go c.watch()
	return c
}

// watch ends the connection when the peer's port dies, this side's port is destroyed, or Close
// is called.
func (c *Conn) watch() {
	defer close(c.closed)
	err := ErrConnClosed
	select {
	case <-c.remote.Invalidated():
		err = ErrPeerClosed
	case <-c.local.Done():
		err = c.local.Err()
	case <-c.closing:
	}
	c.err = err
	close(c.done)
	// Release the remote first, so that requests waiting on it fail, then withdraw the local
	// port, which the peer sees as this side's end.
	_ = c.remote.Close()
	_ = c.local.Close()
}

// Request sends a request to the peer and waits for its reply (see Remote.Request). When the
// peer closes or dies meanwhile, it fails with ErrBecameInvalid at once.
func (c *Conn) Request(ctx context.Context, msgid int32, data []byte) ([]byte, error) {
	return c.remote.Request(ctx, msgid, data)
}

// RequestFunc is Request with the reply lent to read instead of copied (see
// Remote.RequestFunc).
func (c *Conn) RequestFunc(ctx context.Context, msgid int32, data []byte, read func(reply []byte) error) error {
	return c.remote.RequestFunc(ctx, msgid, data, read)
}

// Send sends a one-way message to the peer.
func (c *Conn) Send(ctx context.Context, msgid int32, data []byte) error {
	return c.remote.Send(ctx, msgid, data)
}

// Peer returns the peer's audit token (pid, uid, ...), pinned from the handshake.
func (c *Conn) Peer() mach.AuditToken { return c.peer }

// LocalName returns the name this side registered for the connection, or "" when the fast
// handshake made the connection without names.
func (c *Conn) LocalName() string { return c.localName }

// Dropped returns how many messages to this side were dropped: corrupt ones, and any that came
// from a process other than the peer.
func (c *Conn) Dropped() uint64 { return c.local.Dropped() }

// Done returns a channel that is closed when the connection ends: Close was called, or the peer
// closed it or died.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is open, then ErrConnClosed or ErrPeerClosed, or the
// error that ended this side's server (its port was destroyed).
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Close ends the connection: requests waiting for the peer fail, the handler's requests in
// flight finish, and this side's port (and name) is withdrawn, which the peer sees at once. Like
// Server.Close it must not be called from the connection's own handler (use go c.Close()).
func (c *Conn) Close() error {
	select {
	case c.closing <- struct{}{}:
	case <-c.closed:
	case <-c.done:
	}
	<-c.closed
	return nil
}

// PairListener serves a name and accepts two-way connections on it. Plain CFMessagePort
// requests to the name (any msgid but PairMsgID) go to the handler too, with Message.Conn nil.
type PairListener struct {
	name    string
	srv     *Server // set once serving has started: only Close uses it
	handler Handler
	opts    PairOptions
	accept  chan *Conn
	// handshakes holds a token per names handshake in progress (until its probe is answered).
	handshakes chan struct{}
	// probes are the names handshakes whose probe runs; Close cancels probeCtx and waits.
	probes      sync.WaitGroup
	probeCtx    context.Context
	cancelProbe context.CancelFunc
	// started is closed once srv is set: a handshake can come (and its probe fail, which srv
	// counts) before Listen has returned it.
	started chan struct{}

	mu     sync.Mutex
	closed bool
	// probing counts the names handshakes whose connection waits for its probe: each holds a
	// place in the backlog, so that the backlog refuses the handshakes it could not take.
	probing int
	done    chan struct{}
}

// ListenPair serves name (see Listen) and pairs with the clients that DialPair it. handler
// answers the requests the clients start on every connection; a nil one is refused with
// ErrNilHandler.
func ListenPair(name string, handler Handler, opts *PairOptions) (*PairListener, error) {
	if viaCoreFoundation {
		return nil, &Error{Op: "listen", Name: name, Err: &darwin.PrivateAPIError{Op: "cfmessageport.ListenPair"}}
	}
	if handler == nil {
		return nil, &Error{Op: "listen", Name: name, Err: ErrNilHandler}
	}
	if opts == nil {
		opts = &PairOptions{}
	}
	backlog := opts.Backlog
	if backlog <= 0 {
		backlog = 64
	}
	l := &PairListener{name: name, handler: handler, opts: *opts, accept: make(chan *Conn, backlog),
		handshakes: make(chan struct{}, maxHandshakes), done: make(chan struct{}), started: make(chan struct{})}
	l.probeCtx, l.cancelProbe = context.WithCancel(context.Background())
	srv, err := listen(name, HandlerFunc(l.serve), &ServerOptions{Concurrency: listenerConcurrency, ErrorLog: opts.ErrorLog,
		Require: opts.Require}, l.fastHandshake)
	if err != nil {
		l.cancelProbe()
		return nil, err
	}
	l.srv = srv
	close(l.started)
	return l, nil
}

// Name returns the served name.
func (l *PairListener) Name() string { return l.name }

// Dropped returns how many messages the listener has dropped (see Server.Dropped).
func (l *PairListener) Dropped() uint64 { return l.srv.Dropped() }

// Done returns a channel that is closed when the listener stops receiving: Close was called, or
// its port died (see Server.Done). Err then says which.
func (l *PairListener) Done() <-chan struct{} { return l.srv.Done() }

// Err returns nil while the listener receives; then ErrServerClosed after Close, or the error
// that ended it (see Server.Err).
func (l *PairListener) Err() error { return l.srv.Err() }

// Accept returns the next paired connection.
func (l *PairListener) Accept(ctx context.Context) (*Conn, error) {
	select {
	case c := <-l.accept:
		return c, nil
	case <-l.done:
		return nil, &Error{Op: "accept", Name: l.Name(), Status: ErrInvalid, Err: errListenerClosed}
	case <-ctx.Done():
		return nil, &Error{Op: "accept", Name: l.Name(), Err: ctx.Err()}
	}
}

var errListenerClosed = errors.New("the listener is closed")

// Close stops serving the name and closes the connections not yet accepted. Accepted
// connections stay open.
func (l *PairListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	close(l.done)
	l.mu.Unlock()
	err := l.srv.Close() // no handshake starts after this
	l.cancelProbe()
	l.probes.Wait()
	for {
		select {
		case c := <-l.accept:
			_ = c.Close()
		default:
			return err
		}
	}
}

// full reports whether the backlog has no room, so that a handshake is refused before it makes
// anything.
func (l *PairListener) full() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.accept)+l.probing >= cap(l.accept)
}

// reserve takes a place in the backlog for a names handshake whose probe is to run, or reports
// that there is none; unreserve gives it back when the handshake fails.
func (l *PairListener) reserve() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.accept)+l.probing >= cap(l.accept) {
		return false
	}
	l.probing++
	return true
}

func (l *PairListener) unreserve() {
	l.mu.Lock()
	l.probing--
	l.mu.Unlock()
}

// offer queues a new connection for Accept, or reports that it cannot be taken. reserved says
// that it takes the place reserve took for it.
func (l *PairListener) offer(c *Conn, reserved bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if reserved {
		l.probing--
	}
	if l.closed {
		return false
	}
	select {
	case l.accept <- c:
		return true
	default:
		return false
	}
}

// serve answers the listener's requests: names handshakes, and plain requests for the handler.
func (l *PairListener) serve(ctx context.Context, req *Message) ([]byte, error) {
	if req.MsgID != PairMsgID {
		return l.handler.ServeMessage(ctx, req)
	}
	if req.OneWay || !validPairName(req.Data) {
		return nil, nil // no data: refused
	}
	select {
	case l.handshakes <- struct{}{}:
	default:
		return nil, nil // too many handshakes at once: refused
	}
	if !l.reserve() {
		<-l.handshakes
		return nil, nil // the backlog is full: refused
	}
	release := func() { <-l.handshakes }
	fail := func() { l.unreserve(); release() }
	clientName := string(req.Data)
	hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	remote, err := Dial(hctx, clientName)
	if err != nil {
		fail()
		return nil, nil
	}
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		remote.Close()
		fail()
		return nil, nil
	}
	reg, err := bootstrap.RegisterUnique(l.opts.prefix(l.Name(), ".conn"), port, &bootstrap.Options{})
	if err != nil {
		port.Close()
		remote.Close()
		fail()
		return nil, nil
	}
	// The connection opens once the probe proves that the handshake's sender serves clientName;
	// meanwhile the client's requests to the new name wait in its queue.
	l.probes.Add(1)
	go func() {
		defer l.probes.Done()
		defer release()
		l.confirm(clientName, remote, port, reg, req.Sender)
	}()
	return []byte(reg.Name()), nil
}

// errProbeFailed is why a names handshake was refused after its reply: the name it gave is
// served by another process than the sender (or nobody answered the probe).
var errProbeFailed = errors.New("names handshake: the sender does not serve the name it gave")

// confirm probes the client's name and opens the connection if the reply comes from sender;
// otherwise it withdraws the connection's name, which the client (if it looked it up) sees as the
// connection's end.
func (l *PairListener) confirm(clientName string, remote *Remote, port *mach.ReceiveRight, reg *bootstrap.Registration, sender mach.AuditToken) {
	ctx, cancel := context.WithTimeout(l.probeCtx, handshakeTimeout)
	defer cancel()
	_, tok, err := roundTrip(ctx, remote.service, PairProbeMsgID, nil)
	if err == nil && !samePeer(tok, sender) {
		err = fmt.Errorf("the probe of %q was answered by pid %d, the handshake came from pid %d", clientName, tok.PID(), sender.PID())
	}
	if err != nil {
		_ = reg.Close()
		remote.Close()
		l.unreserve() // before the refusal is counted, which tells a test the place is free
		<-l.started
		l.srv.log.dropped(errProbeFailed.Error(), sender.PID(), err) // before the count, as in Server.drop
		l.srv.dropped.Add(1)
		return
	}
	c := newConn(reg.Name(), port, reg, remote, sender, l.handler, &l.opts)
	if !l.offer(c, true) {
		_ = c.Close()
	}
}

// validPairName reports whether a handshake's name could be a service name.
func validPairName(b []byte) bool {
	if len(b) == 0 || len(b) > bootstrapMaxName || !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c == 0 {
			return false
		}
	}
	return true
}

// bootstrapMaxName is the longest service name launchd takes (name_t is 128 bytes with its NUL).
const bootstrapMaxName = 127

// fastHandshake takes a fast handshake off the listener's port: a send right to the client's
// local port and a send-once right for the answer, which carries a send right to the port this
// side makes for the connection (or nothing, when the connection is refused).
func (l *PairListener) fastHandshake(m *mach.Message) {
	defer m.Destroy()
	right := m.TakeRemote()
	reply, ok := right.(*mach.SendOnceRight)
	if !ok {
		if right != nil {
			_ = right.Close() // a send right to answer on: not a handshake this side speaks
		}
		return // nowhere to answer; Destroy releases the rest
	}
	answer := func(d []mach.Descriptor) error {
		return mach.Send(context.Background(), &mach.Message{Remote: mach.MoveSendOnceOf(reply), ID: pairFastReplyID, Descriptors: d})
	}
	c, port, err := l.fastConn(m)
	if err == nil && l.full() {
		_ = c.Close()
		err = ErrPairRefused
	}
	if err != nil {
		if answer(nil) != nil {
			_ = reply.Close()
		}
		return
	}
	if !l.offer(c, false) {
		_ = c.Close()
		if answer(nil) != nil {
			_ = reply.Close()
		}
		return
	}
	if err := answer([]mach.Descriptor{&mach.PortDescriptor{Port: mach.MakeSendOf(port)}}); err != nil {
		_ = reply.Close()
		_ = c.Close() // the client is gone; Accept returns the connection already ended
	}
}

// fastConn makes the server side of a fast-handshake connection from its request.
func (l *PairListener) fastConn(m *mach.Message) (*Conn, *mach.ReceiveRight, error) {
	if len(m.Descriptors) != 1 || string(m.Body) != string(pairFastMagic) {
		return nil, nil, errNoFastPath
	}
	right, err := m.TakePort(0)
	if err != nil {
		return nil, nil, err
	}
	send, ok := right.(*mach.SendRight)
	if !ok {
		if right != nil {
			_ = right.Close()
		}
		return nil, nil, errNoFastPath
	}
	remote, err := NewRemote(l.Name()+" (peer)", send)
	if err != nil {
		return nil, nil, err
	}
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		remote.Close()
		return nil, nil, err
	}
	return newConn("", port, nil, remote, m.Trailer.Audit, l.handler, &l.opts), port, nil
}

// DialPair looks name up and pairs with it: the fast handshake when the service is this library
// and opts allow it, else the names handshake. handler answers the requests the service starts;
// a nil one is refused with ErrNilHandler. The service may start one as soon as the connection
// exists, so handler can run before DialPair returns: it must not wait for DialPair's result
// (Message.Conn gives it the connection).
func DialPair(ctx context.Context, name string, handler Handler, opts *PairOptions) (*Conn, error) {
	if viaCoreFoundation {
		return nil, &Error{Op: "pair", Name: name, Err: &darwin.PrivateAPIError{Op: "cfmessageport.DialPair"}}
	}
	if handler == nil {
		return nil, &Error{Op: "pair", Name: name, Err: ErrNilHandler}
	}
	if opts == nil {
		opts = &PairOptions{}
	}
	service, err := bootstrap.LookUp(ctx, name)
	if err != nil {
		return nil, &Error{Op: "pair", Name: name, Err: err} // as Dial: CF has no status for it
	}
	defer service.Close()
	if !opts.NamesOnly {
		c, err := dialFast(ctx, name, service, handler, opts)
		if !errors.Is(err, errNoFastPath) {
			return c, err
		}
	}
	return dialNames(ctx, name, service, handler, opts)
}

// dialFast tries the fast handshake; errNoFastPath means the service dropped it.
func dialFast(ctx context.Context, name string, service *mach.SendRight, handler Handler, opts *PairOptions) (*Conn, error) {
	fail := func(err error) (*Conn, error) {
		return nil, &Error{Op: "pair", Name: name, Status: pairStatus(ctx, err), Err: err}
	}
	local, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return fail(err)
	}
	reply, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		local.Close()
		return fail(err)
	}
	defer func() {
		mach.Drain(reply)
		reply.Close()
	}()
	m := &mach.Message{ID: pairFastID, Remote: mach.CopySendOf(service), Local: mach.MakeSendOnceOf(reply),
		Body: pairFastMagic, Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MakeSendOf(local)}}}
	if err := mach.Send(ctx, m); err != nil {
		local.Close()
		return fail(err)
	}
	var in mach.Message
	if err := mach.Receive(ctx, reply, &in); err != nil {
		local.Close()
		return fail(err)
	}
	defer in.Destroy()
	if mach.IsNotificationID(in.ID) {
		local.Close()
		return nil, errNoFastPath // the service destroyed the handshake unread
	}
	if in.ID != pairFastReplyID {
		local.Close()
		return fail(fmt.Errorf("unexpected handshake reply (msgh_id %#x)", uint32(in.ID)))
	}
	if len(in.Descriptors) == 0 {
		local.Close()
		return nil, &Error{Op: "pair", Name: name, Status: ErrInvalid, Err: ErrPairRefused}
	}
	if err := checkService(opts, in.Trailer.Audit); err != nil {
		local.Close() // the service's side sees this side's end; Destroy releases its right
		return nil, &Error{Op: "pair", Name: name, Status: ErrInvalid, Err: err}
	}
	right, err := in.TakePort(0)
	send, ok := right.(*mach.SendRight)
	if err != nil || !ok {
		if right != nil {
			_ = right.Close()
		}
		local.Close()
		return fail(errors.New("the handshake reply carries no send right"))
	}
	remote, err := NewRemote(name, send)
	if err != nil {
		local.Close()
		return nil, err
	}
	return newConn("", local, nil, remote, in.Trailer.Audit, handler, opts), nil
}

// dialNames pairs by the names handshake.
func dialNames(ctx context.Context, name string, service *mach.SendRight, handler Handler, opts *PairOptions) (*Conn, error) {
	fail := func(status Status, err error) (*Conn, error) {
		return nil, &Error{Op: "pair", Name: name, Status: status, Err: err}
	}
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return fail(ErrTransport, err)
	}
	reg, err := bootstrap.RegisterUnique(opts.prefix(name, ".peer"), port, &bootstrap.Options{})
	if err != nil {
		port.Close()
		return fail(ErrInvalid, err)
	}
	// Requests the service starts wait in the port's queue until the connection serves it,
	// which is after the reply has pinned the service's identity.
	serverName, peerToken, err := pairRequest(ctx, service, reg.Name())
	if err == nil && (serverName == "" || serverName == reg.Name()) {
		err = ErrPairRefused
	}
	if err == nil {
		err = checkService(opts, peerToken)
	}
	if err != nil {
		reg.Close()
		if errors.Is(err, ErrPairRefused) || errors.Is(err, ErrPeerRejected) {
			return fail(ErrInvalid, err)
		}
		return fail(pairStatus(ctx, err), err)
	}
	remote, err := Dial(ctx, serverName)
	if err != nil {
		// The reply is not a name anyone serves: the service answered, but not as a pairing one.
		reg.Close()
		return fail(ErrInvalid, fmt.Errorf("%w: the reply names no live service: %w", ErrPairRefused, err))
	}
	return newConn(reg.Name(), port, reg, remote, peerToken, handler, opts), nil
}

// checkService checks the service's answer to a handshake against opts.Require.
func checkService(opts *PairOptions, tok mach.AuditToken) error {
	if opts.Require == nil {
		return nil
	}
	if err := opts.Require.Check(tok); err != nil {
		return fmt.Errorf("%w: %w", ErrPeerRejected, err)
	}
	return nil
}

// pairRequest sends the names handshake's request and returns the reply's name and the audit
// token of the process that sent it.
func pairRequest(ctx context.Context, service *mach.SendRight, localName string) (string, mach.AuditToken, error) {
	p, token, err := roundTrip(ctx, service, PairMsgID, []byte(localName))
	if err != nil {
		return "", token, err
	}
	name := string(p.Data)
	if p.NoData || !validPairName([]byte(name)) {
		return "", token, ErrPairRefused
	}
	return name, token, nil
}

// roundTrip sends one request (conversation 1) on a reply port of its own and returns the reply,
// whose data is the caller's, and the audit token of the process that sent it. A request the
// service destroyed unanswered fails with ErrPairRefused.
func roundTrip(ctx context.Context, service *mach.SendRight, msgid int32, data []byte) (wire.Packet, mach.AuditToken, error) {
	reply, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return wire.Packet{}, mach.AuditToken{}, err
	}
	defer func() {
		mach.Drain(reply)
		reply.Close()
	}()
	var m mach.Message
	hello := wire.Packet{MsgID: msgid, ConvID: 1, Data: data}
	if err := hello.Encode(&m, mach.CopySendOf(service), mach.MakeSendOnceOf(reply)); err != nil {
		return wire.Packet{}, mach.AuditToken{}, err
	}
	if err := mach.Send(ctx, &m); err != nil {
		return wire.Packet{}, mach.AuditToken{}, err
	}
	for {
		var in mach.Message
		if err := mach.Receive(ctx, reply, &in); err != nil {
			return wire.Packet{}, mach.AuditToken{}, err
		}
		if mach.IsNotificationID(in.ID) {
			in.Destroy()
			return wire.Packet{}, mach.AuditToken{}, ErrPairRefused // the service destroyed the request
		}
		p, err := wire.Decode(&in, true)
		if err != nil || p.ConvID != -1 {
			in.Destroy()
			continue // not the reply; CF drops it too
		}
		p.Data = append([]byte{}, p.Data...) // out of the message's memory, which goes now
		token := in.Trailer.Audit
		in.Destroy()
		return p, token, nil
	}
}

// pairStatus is CF's status for a handshake that failed with err: the timeouts as CF's, a
// cancelled context none, anything else a transport error.
func pairStatus(ctx context.Context, err error) Status {
	switch {
	case errors.Is(err, mach.SendTimedOut):
		return ErrSendTimeout
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, mach.RcvTimedOut):
		return ErrReceiveTimeout
	case ctx.Err() != nil:
		return 0
	}
	return ErrTransport
}
