package cfmessageport

import (
	"context"
	"errors"
	"runtime"

	"fmt"
	"sync"
	"sync/atomic"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/mach"
)

// Request is one request a Server hands its handler.
type Request struct {
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
// "no data" reply (byteslen -1), which the requester receives as empty data.
type Handler interface {
	ServeMessage(ctx context.Context, req *Request) ([]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request) ([]byte, error)

// ServeMessage calls f.
func (f HandlerFunc) ServeMessage(ctx context.Context, req *Request) ([]byte, error) {
	return f(ctx, req)
}

// ServerOptions tune Listen.
type ServerOptions struct {
	// PerPID registers a per-process service (CFMessagePortCreatePerProcessLocal).
	PerPID bool
	// Concurrency is how many requests run at once. 0 or 1 serves them one at a time in
	// arrival order, as CF does.
	Concurrency int
}

// Server serves a CFMessagePort name, what CFMessagePortCreateLocal gives in CF.
type Server struct {
	name    string
	port    *mach.ReceiveRight
	reg     *bootstrap.Registration // nil when the name was checked in
	handler Handler
	slots   chan struct{}

	// peer, when set, is the only process whose messages are served: others are dropped.
	peer *mach.AuditToken
	// raw, when set, takes the messages with msgh_id pairFastID (fast pairing handshakes).
	raw func(*mach.Message)

	stopper  stopper
	done     chan struct{}
	inflight sync.WaitGroup
	dropped  atomic.Uint64
	once     sync.Once
}

// Listen serves name with handler. Like CF it first tries bootstrap_check_in (a name launchd
// declared for this job) and otherwise registers a new port (bootstrap_register2); a sandboxed
// process must use a name inside its application groups (see package sandboxcheck).
func Listen(name string, handler Handler, opts *ServerOptions) (*Server, error) {
	return listen(name, handler, opts, nil)
}

// listen is Listen, with raw taking the fast pairing handshakes when set.
func listen(name string, handler Handler, opts *ServerOptions, raw func(*mach.Message)) (*Server, error) {
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
	reg, err := bootstrap.Register(name, port, bootstrap.Options{PerPID: opts.PerPID})
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
	s := &Server{name: name, port: port, reg: reg, handler: handler, peer: peer, raw: raw,
		done: make(chan struct{}), stopper: newStopper()}
	if opts.Concurrency > 1 {
		s.slots = make(chan struct{}, opts.Concurrency)
	}
	go s.serve()
	return s
}

// samePeer reports whether two audit tokens name the same process: its pid, the pid's version
// (which tells a reused pid apart on macOS) and its effective user.
func samePeer(a, b mach.AuditToken) bool {
	return a.PID() == b.PID() && a.PIDVersion() == b.PIDVersion() && a.EUID() == b.EUID()
}

// Name returns the served name.
func (s *Server) Name() string { return s.name }

// Dropped returns how many messages the server has dropped: corrupt ones, and for a paired
// connection's server those from any process but the peer.
func (s *Server) Dropped() uint64 { return s.dropped.Load() }

func (s *Server) serve() {
	defer close(s.done)
	ctx := context.Background() // handlers run to the end, even past Close
	var m *mach.Message
	for {
		if m == nil || s.slots != nil {
			// Served one at a time, a request is done with before the next receive, and the
			// message and its buffer are reused; a request handed to a goroutine keeps its own.
			m = new(mach.Message)
		}
		if err := mach.ReceiveWithOptions(ctx, s.port, m, receiveOptions); err != nil {
			if errors.Is(err, mach.ErrRejected) || errors.Is(err, mach.RcvTooLarge) {
				s.dropped.Add(1) // the kernel or Receive destroyed it
				continue
			}
			return // the port is gone
		}
		if s.stopper.is(m) {
			_ = m.Destroy()
			return
		}
		if s.peer != nil && !samePeer(m.Trailer.Audit, *s.peer) {
			s.dropped.Add(1) // only the paired peer may use this port
			_ = m.Destroy()
			continue
		}
		if s.raw != nil && m.ID == pairFastID {
			s.raw(m)
			continue
		}
		p, err := Decode(m, false)
		if err != nil {
			// CF's rule: destroy it (a carried reply right too, so its sender learns) and go on.
			s.dropped.Add(1)
			_ = m.Destroy()
			continue
		}
		if s.slots == nil {
			s.handle(ctx, m, p)
			continue
		}
		s.slots <- struct{}{}
		s.inflight.Add(1)
		go func(m *mach.Message) {
			defer func() { <-s.slots; s.inflight.Done() }()
			s.handle(ctx, m, p)
		}(m)
		runtime.Gosched() // start the handler before this thread may block in the next Receive
	}
}

// receiveOptions size the first receive buffer for the largest inline message CF sends, so that
// no request or reply needs a second attempt with a larger one (Receive's default 4 KiB holds
// only 4096 bytes with the trailer, less than a 4000-byte payload with its headers).
var receiveOptions = mach.ReceiveOptions{BufferSize: maxInlineMessage + receiveTrailerRoom}

const (
	maxInlineMessage   = fixedSize + InlineLimit // 4060 bytes, the most a valid inline message has
	receiveTrailerRoom = 68                      // MAX_TRAILER_SIZE, which Receive asks room for
)

// handle runs the handler and replies on the request's send-once right, if it has one.
func (s *Server) handle(ctx context.Context, m *mach.Message, p Packet) {
	var reply *mach.SendOnceRight
	switch rt := m.TakeRemote().(type) {
	case *mach.SendOnceRight:
		reply = rt
	case nil:
	default:
		_ = rt.Close() // a peer gave a send right to reply on: CF answers only send-once rights
	}
	req := &Request{MsgID: p.MsgID, Data: p.Data, OneWay: reply == nil, Sender: m.Trailer.Audit}
	data, err := s.call(ctx, req)
	// The request's memory goes only after the reply is sent: a handler may return req.Data.
	defer m.Destroy()
	if reply == nil {
		return
	}
	out := Packet{MsgID: p.MsgID, ConvID: -p.ConvID, Data: data, NoData: data == nil || err != nil}
	if out.NoData {
		out.Data = nil
	}
	rm, region, err := encodeReplyFrom(out, reply, m)
	// CF replies with a blocking send; a requester that went away makes it fail at once.
	if err == nil && mach.Send(context.Background(), rm) == nil {
		putOutMessage(rm)
		return
	}
	if region != nil {
		_ = region.Close()
	}
	_ = reply.Close()
}

// encodeReply lays a reply out as CF's server sends it: an out-of-line payload travels in memory
// the kernel takes from the server (deallocate set), here a region the data is copied into.
func encodeReply(out Packet, reply *mach.SendOnceRight) (*mach.Message, *mach.Region, error) {
	return encodeReplyFrom(out, reply, nil)
}

// encodeReplyFrom is encodeReply for the reply to req: when the reply's data is the whole
// out-of-line memory of req (a handler that returns req.Data, such as an echo), that region
// itself is sent with deallocate set, as the kernel takes it, instead of a copy of it. The
// region is then no longer req's.
func encodeReplyFrom(out Packet, reply *mach.SendOnceRight, req *mach.Message) (*mach.Message, *mach.Region, error) {
	rm := getOutMessage()
	if err := out.encodeInto(rm, mach.MoveSendOnceOf(reply), mach.Port{}); err != nil {
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

func (s *Server) call(ctx context.Context, req *Request) (data []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			data, err = nil, fmt.Errorf("cfmessageport: handler panicked: %v", r)
		}
	}()
	return s.handler.ServeMessage(ctx, req)
}

// Close answers the requests already queued, waits for those being handled to finish and be
// answered, and withdraws the name. It must not be called from a handler, which it would wait
// for: a handler that wants the server closed can call go srv.Close(). Requests that arrive later are destroyed with the port,
// which their senders see as the service's death. Safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		if s.stopper.send(s.port) == nil {
			<-s.done
		}
		s.inflight.Wait()
		if s.reg != nil {
			err = s.reg.Close()
		} else {
			err = s.port.Close()
		}
	})
	if err != nil {
		return &Error{Op: "close", Name: s.name, Err: err}
	}
	return nil
}
