package cfmessageport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/peer"
)

// Message is one request (or one-way message) a Server hands its handler. (It was called
// Request, which is also the name of Remote's method that sends one.)
type Message struct {
	// MsgID is the caller's message id.
	MsgID int32
	// Data is the payload, empty (never nil) when none came. It is valid only during the call;
	// the handler may return it (or part of it) as the reply without copying.
	Data []byte
	// OneWay is set for Remote.Send and CF's one-way sends: the reply is not delivered.
	OneWay bool
	// Sender is the sending process's audit token (pid, uid, ...), from the message trailer.
	Sender mach.AuditToken
	// Conn is the paired connection the request came on, or nil for a plain request.
	Conn *Conn
}

// Handler answers requests. The returned data is the reply; nil data or an error sends CF's
// "no data" reply (byteslen -1), which the requester receives as empty data, and the error (or
// a recovered panic, with its stack) goes to the server's ErrorLog. Data over wire.MaxPayload (1.5 GiB)
// is logged there too and sent as an empty reply (byteslen 0), as CF does. ctx is canceled when the
// server is closed (context.Cause gives ErrServerClosed) and, for a request that expects a
// reply, when its requester goes away (ErrRequesterGone): the process exited or dropped its
// reply port.
type Handler interface {
	ServeMessage(ctx context.Context, req *Message) ([]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Message) ([]byte, error)

// ServeMessage calls f.
func (f HandlerFunc) ServeMessage(ctx context.Context, req *Message) ([]byte, error) {
	return f(ctx, req)
}

// ServerOptions tune Listen.
type ServerOptions struct {
	// PerPID registers a per-process service (CFMessagePortCreatePerProcessLocal).
	PerPID bool
	// Concurrency is how many requests run at once. 0 or 1 serves them one at a time in
	// arrival order, as CF does.
	Concurrency int
	// ErrorLog receives what the server would otherwise lose silently: handler errors,
	// recovered handler panics (with their stack) and the messages it dropped. Each kind is
	// logged at most logBurst times a second; the next line logged says how many were left out.
	// nil means slog.Default().
	ErrorLog *slog.Logger
	// Require, when set, is what a client must meet (see package peer): a message from a process
	// that fails it is dropped before the handler runs (a requester's reply right is destroyed:
	// it gets no reply and waits out its deadline, ErrReceiveTimeout, as for a server that
	// drops a corrupt request), counted by Dropped and logged with the predicate that failed. The
	// verdict on a process is cached (by pid and pid version, or pid and start time on Linux), so
	// only a process's first message pays for the look-up, which runs in the receive loop.
	Require *peer.Requirement
}

// Server serves a CFMessagePort name, what CFMessagePortCreateLocal gives in CF.
//
// No message a peer can send stops it: a malformed or unexpected message is destroyed (its
// rights and memory released), counted by Dropped and logged, and serving goes on. Only Close,
// Shutdown or the death of its port end it; Done and Err report that.
type Server struct {
	name    string
	port    *mach.ReceiveRight
	reg     *bootstrap.Registration // nil when the name was checked in
	handler Handler
	log     errorLog
	// loops is how many receive loops serve the port (ServerOptions.Concurrency, at least 1).
	loops int

	// peer, when set, is the only process whose messages are served: others are dropped.
	peer *mach.AuditToken
	// require, when set, is what every sender must meet (ServerOptions.Require).
	require *peer.Requirement
	// raw, when set, takes the messages with msgh_id pairFastID (fast pairing handshakes).
	raw func(*mach.Message)

	// baseCtx is the parent of every handler's context; Close cancels it.
	baseCtx context.Context
	cancel  context.CancelCauseFunc
	// requesters cancels a handler's context when its requester goes away.
	requesters requesterWatch

	stopper  stopper
	stopOnce sync.Once     // sends the stop message
	stopping atomic.Bool   // Close or Shutdown began: the loops' end is not an error
	closing  atomic.Bool   // Close began: requests still queued are destroyed, not served
	draining atomic.Bool   // Shutdown's stop was received: the loops poll until the queue is empty
	running  atomic.Int32  // receive loops that have not returned
	active   atomic.Int32  // receive loops not yet retired (see retire)
	rawMu    sync.Mutex    // serializes raw
	done     chan struct{} // closed when every receive loop has returned
	endOnce  sync.Once
	err      error          // why the first loop to end returned; set before done is closed
	inflight sync.WaitGroup // the CoreFoundation path's callbacks (viacf.go)
	dropped  atomic.Uint64

	withdrawOnce sync.Once
	withdrawErr  error

	cf *cfLocal // set on the public-API-only path (viacf.go), which has no port or loop of its own
}

// Listen serves name with handler. Like CF it first tries bootstrap_check_in, which hands over a
// name launchd declared for this job and, as launchd does, makes one nobody serves (see
// bootstrap.CheckIn), and otherwise registers a new port (bootstrap_register2); a per-PID name
// is always registered. Either way the name goes with the server's port. A sandboxed process
// must use a name inside its application groups (see package sandboxcheck). A nil handler is
// refused with ErrNilHandler.
func Listen(name string, handler Handler, opts *ServerOptions) (*Server, error) {
	if viaCoreFoundation {
		return listenCF(name, handler, opts)
	}
	return listen(name, handler, opts, nil)
}

// listen is Listen, with raw taking the fast pairing handshakes when set.
func listen(name string, handler Handler, opts *ServerOptions, raw func(*mach.Message)) (*Server, error) {
	if handler == nil {
		return nil, &Error{Op: "listen", Name: name, Err: ErrNilHandler}
	}
	if opts == nil {
		opts = &ServerOptions{}
	}
	if !opts.PerPID {
		if port, err := bootstrap.CheckIn(name); err == nil {
			return startServer(name, port, nil, handler, opts, nil, raw), nil
		}
	}
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return nil, &Error{Op: "listen", Name: name, Err: err}
	}
	reg, err := bootstrap.Register(name, port, &bootstrap.Options{PerPID: opts.PerPID})
	if err != nil {
		port.Close()
		return nil, &Error{Op: "listen", Name: name, Err: err}
	}
	return startServer(name, port, reg, handler, opts, nil, raw), nil
}

// startServer serves port, and withdraws reg (when set) at Close. With peer set, only that
// process's messages are served.
func startServer(name string, port *mach.ReceiveRight, reg *bootstrap.Registration, handler Handler,
	opts *ServerOptions, peer *mach.AuditToken, raw func(*mach.Message)) *Server {
	s := &Server{name: name, port: port, reg: reg, handler: handler, peer: peer, raw: raw, require: opts.Require,
		done: make(chan struct{}), stopper: newStopper(), log: newErrorLog(opts.ErrorLog, name)}
	s.baseCtx, s.cancel = context.WithCancelCause(context.Background())
	s.loops = max(opts.Concurrency, 1)
	s.running.Store(int32(s.loops))
	s.active.Store(int32(s.loops))
	for range s.loops {
		go s.serve()
	}
	return s
}

// samePeer reports whether two audit tokens name the same process: its pid, the pid's version
// (which tells a reused pid apart on macOS) and its effective user.
func samePeer(a, b mach.AuditToken) bool {
	return a.PID() == b.PID() && a.PIDVersion() == b.PIDVersion() && a.EUID() == b.EUID()
}

// Name returns the served name.
func (s *Server) Name() string { return s.name }

// Dropped returns how many messages the server has dropped: malformed ones, ones CF would drop,
// those from a process that fails ServerOptions.Require, and for a paired connection's server
// those from any process but the peer.
func (s *Server) Dropped() uint64 { return s.dropped.Load() }

// Done returns a channel that is closed when the server stops receiving: Close or Shutdown
// was called, or its port died. Err then says which.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns nil while the server receives; then ErrServerClosed after Close or Shutdown, or
// an *Error wrapping the receive error that ended it (its port was destroyed). A server that
// ended on its own must still be closed, to withdraw its name.
func (s *Server) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// expiredContext makes Receive poll the queue once (a deadline already past).
var expiredContext, _ = context.WithDeadline(context.Background(), time.Time{})

// Backoff after a receive error that is neither a dropped message nor the port's end (a
// resource shortage, say): as net/http's accept loop does, so that a persistent failure does not
// spin.
const (
	minReceiveBackoff = 5 * time.Millisecond
	maxReceiveBackoff = time.Second
)

// serve is one of the server's receive loops (ServerOptions.Concurrency of them, at least one):
// each receives a request and runs its handler inline, so that a request is never handed from
// one goroutine to another and each loop reuses its message and buffer. The emulation, like
// Mach, lets several threads receive on one port (internal/emu TestReceiversDrainOnePort).
//
// Stopping: stop queues one stop message per loop, and a loop consumes at most one of them
// before it retires, so none is left blocked in a receive. Shutdown's drain is done by the last
// loop to retire, which polls until the queue is empty (see retire).
func (s *Server) serve() {
	defer s.loopReturned()
	m := new(mach.Message)
	var backoff time.Duration
	last := false // this loop retired last: it alone drains the queue after Shutdown's stop
	for {
		rctx := context.Background()
		if s.draining.Load() {
			rctx = expiredContext // Shutdown: receives now only poll
		}
		if err := mach.ReceiveWithOptions(rctx, s.port, m, receiveOptions); err != nil {
			switch {
			case s.draining.Load() && errors.Is(err, mach.RcvTimedOut) || s.closing.Load():
				// Shutdown answered what was queued; or Close, which answers nothing more (and
				// must not wait out a peer that floods the port with malformed datagrams).
				s.end(ErrServerClosed, last)
				return
			// A dropped message does not end a loop that is stopping: Shutdown still answers
			// the requests queued behind it, up to the stop message. Any other failure while
			// stopping ends it, so that Close never waits on a receive that keeps failing.
			case mach.PortGone(err) || s.stopping.Load() && !mach.MessageDropped(err):
				if s.stopping.Load() {
					s.end(ErrServerClosed, last)
				} else if s.end(&Error{Op: "serve", Name: s.name, Err: err}, last) {
					s.log.stopped(err)
				}
				return
			case mach.MessageDropped(err):
				backoff = 0
				s.drop("receive", err) // Receive destroyed it
			default:
				backoff = min(max(2*backoff, minReceiveBackoff), maxReceiveBackoff)
				s.log.receiveFailed(err, backoff)
				time.Sleep(backoff)
			}
			continue
		}
		backoff = 0
		if s.stopper.is(m) || s.draining.Load() && s.closing.Load() {
			// A stop message, or Close while Shutdown drains the queue.
			_ = m.Destroy()
			if s.closing.Load() {
				s.end(ErrServerClosed, last)
				return
			}
			if last {
				continue // a stop message meant for a loop that already retired
			}
			// Shutdown: serve what is still queued, then stop. On Mach the stop messages come
			// after everything queued before them; the Linux emulation keeps order per sender
			// only, so requests queued before them may come after them. The other loops,
			// and the last to retire, poll until the queue is empty.
			s.draining.Store(true)
			if !s.retire() {
				return
			}
			last = true
			continue
		}
		if s.closing.Load() {
			_ = m.Destroy() // Close: its requester sees the reply right destroyed
			continue
		}
		if s.peer != nil && !samePeer(m.Trailer.Audit, *s.peer) {
			s.dropMessage(m, "from a process other than the peer", nil)
			continue
		}
		if s.require != nil {
			if err := s.require.Check(m.Trailer.Audit); err != nil {
				s.dropMessage(m, "the sender fails the server's requirement", err)
				continue
			}
		}
		if s.raw != nil && m.ID == pairFastID {
			// PairListener's handshakes check and then take a place in its backlog: one at a time.
			s.rawMu.Lock()
			s.raw(m)
			s.rawMu.Unlock()
			continue
		}
		p, err := wire.Decode(m, false)
		if err != nil {
			// CF's rule: destroy it (a carried reply right too, so its sender learns) and go on.
			s.dropMessage(m, "not a CFMessagePort message", err)
			continue
		}
		s.handle(m, p) // destroys m (which keeps its buffer) once the reply is sent
	}
}

// retire takes a loop out of the count of those still receiving after Shutdown's stop, and
// reports whether it was the last: that one drains the queue before the server stops.
func (s *Server) retire() (last bool) { return s.active.Add(-1) == 0 }

// end records why a loop ended, and retires it unless it already retired. Only the first
// reason is kept (Err's); it reports whether it was this one.
func (s *Server) end(err error, retired bool) (first bool) {
	if !retired {
		s.retire()
	}
	s.endOnce.Do(func() { s.err, first = err, true })
	return first
}

// loopReturned closes done when the last loop has returned (its handler included).
func (s *Server) loopReturned() {
	if s.running.Add(-1) == 0 {
		close(s.done)
	}
}

// drop logs and counts a message Receive destroyed: logged first, so that whoever sees the count
// (Dropped) finds the log line written.
func (s *Server) drop(why string, err error) {
	s.log.dropped(why, 0, err)
	s.dropped.Add(1)
}

// dropMessage destroys a received message the server will not serve, counts and logs it.
func (s *Server) dropMessage(m *mach.Message, why string, err error) {
	s.log.dropped(why, m.Trailer.Audit.PID(), err) // before the count, as in drop
	s.dropped.Add(1)
	_ = m.Destroy()
}

// receiveOptions (a server's and a remote's) receive exactly into a buffer sized for the largest
// valid message CF sends (4000 bytes inline with its headers), so that no message needs a second attempt
// with a larger buffer, and a larger message, which no valid request is, is destroyed by the
// kernel instead of staying at the head of the queue (MACH_RCV_TOO_LARGE without
// MACH_RCV_LARGE; see Receive's Exact).
var receiveOptions = mach.ReceiveOptions{BufferSize: maxInlineMessage + receiveTrailerRoom, Exact: true}

const (
	maxInlineMessage   = wire.HeaderSize + wire.InlineLimit // 4060 bytes, the most a valid inline message has
	receiveTrailerRoom = 68                                 // MAX_TRAILER_SIZE, which Receive asks room for
)

// handle runs the handler and replies on the request's send-once right, if it has one.
func (s *Server) handle(m *mach.Message, p wire.Packet) {
	var reply *mach.SendOnceRight
	switch rt := m.TakeRemote().(type) {
	case *mach.SendOnceRight:
		reply = rt
	case nil:
	default:
		_ = rt.Close() // a peer gave a send right to reply on: CF answers only send-once rights
	}
	req := &Message{MsgID: p.MsgID, Data: p.Data, OneWay: reply == nil, Sender: m.Trailer.Audit}
	var ctx context.Context = s.baseCtx
	var rc *requestContext
	if reply != nil {
		rc = &requestContext{s: s, reply: reply}
		ctx = rc
	}
	data, err := s.call(ctx, req)
	if rc != nil {
		rc.finish() // before the reply right is sent or released, which frees its name for reuse
	}
	// The request's memory goes only after the reply is sent: a handler may return req.Data.
	defer m.Destroy()
	if reply == nil {
		return
	}
	if err == nil && len(data) > wire.MaxPayload {
		// CF logs such a reply and answers with empty data (byteslen 0), so that the requester
		// is not left to its timeout (CFMessagePort.c, __CFMessagePortPerform).
		s.log.replyTooLarge(req, len(data))
		data = []byte{}
	}
	out := wire.Packet{MsgID: p.MsgID, ConvID: -p.ConvID, Data: data, NoData: data == nil || err != nil}
	if out.NoData {
		out.Data = nil
	}
	rm, region, err := encodeReplyFrom(out, reply, m)
	if err == nil {
		// A reply goes on a send-once right, which Mach always enqueues, so this never waits on
		// the requester (CF sends its replies blocking for that reason); a requester that went
		// away makes it fail at once.
		if err = mach.Send(context.Background(), rm); err == nil {
			putOutMessage(rm)
			return
		}
	}
	s.log.replyFailed(req, err)
	if region != nil {
		_ = region.Close()
	}
	_ = reply.Close()
}

// encodeReply lays a reply out as CF's server sends it: an out-of-line payload travels in memory
// the kernel takes from the server (deallocate set), here a region the data is copied into.
func encodeReply(out wire.Packet, reply *mach.SendOnceRight) (*mach.Message, *mach.Region, error) {
	return encodeReplyFrom(out, reply, nil)
}

// encodeReplyFrom is encodeReply for the reply to req: when the reply's data is the whole
// out-of-line memory of req (a handler that returns req.Data, such as an echo), that region
// itself is sent with deallocate set, as the kernel takes it, instead of a copy of it. The
// region is then no longer req's.
func encodeReplyFrom(out wire.Packet, reply *mach.SendOnceRight, req *mach.Message) (*mach.Message, *mach.Region, error) {
	rm := getOutMessage()
	if err := out.EncodeInto(rm, mach.MoveSendOnceOf(reply), mach.Port{}); err != nil {
		return nil, nil, err
	}
	if len(rm.Descriptors) == 0 {
		return rm, nil, nil
	}
	region := requestRegion(req, out.Data)
	if region == nil {
		var err error
		if region, err = mach.AllocateRegion(len(out.Data)); err != nil {
			return nil, nil, err
		}
		copy(region.Bytes(), out.Data)
	}
	rm.Descriptors[0] = &mach.OOLDescriptor{Region: region, Deallocate: true, Copy: mach.VirtualCopy}
	return rm, region, nil
}

// requestRegion takes from req the out-of-line region whose memory is exactly data, if it has
// one, and returns it; otherwise nil.
func requestRegion(req *mach.Message, data []byte) *mach.Region {
	if req == nil || len(data) == 0 {
		return nil
	}
	for i, d := range req.Descriptors {
		o, ok := d.(*mach.OOLDescriptor)
		if !ok || o.Region == nil || o.Region.Len() != len(data) {
			continue
		}
		if b := o.Region.Bytes(); len(b) > 0 && &b[0] == &data[0] {
			if r, err := req.TakeRegion(i); err == nil {
				return r
			}
		}
	}
	return nil
}

// call runs the handler with a context that Close cancels, recovers a panic, and logs a
// failure: the requester gets CF's "no data" reply either way.
func (s *Server) call(ctx context.Context, req *Message) (data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			data, err = nil, fmt.Errorf("%w: %v", ErrHandlerPanicked, r)
			s.log.panicked(req, r, debug.Stack())
		}
	}()
	data, err = s.handler.ServeMessage(ctx, req)
	if err != nil {
		s.log.handlerFailed(req, err)
	}
	return data, err
}

// Close stops the server at once: handlers' contexts are canceled, requests still queued are
// destroyed unanswered (their requesters see the reply right destroyed and fail at once), the
// handlers running are waited for, and the name is withdrawn. Requests that arrive later are
// destroyed with the port, which their senders see as the service's death. It must not be called
// from a handler, which it would wait for: a handler that wants the server closed can call go
// srv.Close(). Safe to call more than once, and after Shutdown.
func (s *Server) Close() error {
	if s.cf != nil {
		return s.cf.close(s)
	}
	s.closing.Store(true)
	s.cancel(ErrServerClosed)
	s.stop()
	<-s.done
	s.inflight.Wait()
	s.requesters.stop()
	return s.withdraw()
}

// Shutdown stops the server gracefully: the requests queued before it are still answered (and
// any that join the queue before it is found empty), then receiving stops, the name is
// withdrawn (later requests are destroyed with the port, which their senders see as the
// service's death) and the handlers still running are waited for. When
// ctx ends first, Shutdown returns its error and leaves the server stopping; Close then ends it
// at once. Like Close, it must not be called from a handler.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.cf != nil {
		return s.cf.shutdown(ctx, s)
	}
	s.stop()
	select {
	case <-s.done:
	case <-ctx.Done():
		return &Error{Op: "shutdown", Name: s.name, Err: ctx.Err()}
	}
	if err := s.withdraw(); err != nil {
		return err
	}
	idle := make(chan struct{})
	go func() { s.inflight.Wait(); close(idle) }()
	select {
	case <-idle:
		s.requesters.stop()
		return nil
	case <-ctx.Done():
		return &Error{Op: "shutdown", Name: s.name, Err: ctx.Err()}
	}
}

// stop queues the stop messages behind the requests already queued, once. If it cannot be sent
// (the port is already gone), the loop ends on its own.
func (s *Server) stop() {
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		for range s.loops { // one for each loop (see serve)
			if err := s.stopper.send(s.port); err != nil {
				// Unreachable while this side holds the port; closing it ends the loops anyway.
				_ = s.withdraw()
				return
			}
		}
	})
}

// withdraw withdraws the name and destroys the port, once.
func (s *Server) withdraw() error {
	s.withdrawOnce.Do(func() {
		var err error
		if s.reg != nil {
			err = s.reg.Close()
		} else {
			err = s.port.Close()
		}
		// A port destroyed behind the server's back (which ended its loop) is already gone.
		if err != nil && !errors.Is(err, mach.ErrClosed) {
			s.withdrawErr = &Error{Op: "close", Name: s.name, Err: err}
		}
	})
	return s.withdrawErr
}
