package cfmessageport

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/mach"
)

// Remote is a client of a CFMessagePort service, what CFMessagePortCreateRemote gives in CF. It
// is safe for many goroutines at once: each request carries its own conversation id and replies
// are matched by it, so they may come back in any order.
type Remote struct {
	name    string
	service *mach.SendRight
	reply   *mach.ReceiveRight // one reply port for all requests, as CF keeps

	conv    atomic.Int32
	mu      sync.Mutex
	pending map[int32]chan []byte
	closed  bool

	invalid     chan struct{} // closed when the service died or the remote was closed
	invalidOnce sync.Once
	died        atomic.Bool // the service died (rather than the remote being closed)

	stopper stopper
	done    chan struct{}
}

// Dial looks name up (bootstrap_look_up) and returns a Remote for it.
func Dial(ctx context.Context, name string) (*Remote, error) {
	s, err := bootstrap.LookUp(ctx, name)
	if err != nil {
		return nil, &Error{Op: "dial", Name: name, Status: ErrInvalid, Err: err}
	}
	return newRemote(name, s)
}

// DialPID is Dial for the per-process service name of process pid.
func DialPID(ctx context.Context, name string, pid int) (*Remote, error) {
	s, err := bootstrap.LookUpPID(ctx, name, pid)
	if err != nil {
		return nil, &Error{Op: "dial", Name: name, Status: ErrInvalid, Err: err}
	}
	return newRemote(name, s)
}

// NewRemote makes a Remote for a send right obtained some other way (it takes ownership of it).
func NewRemote(name string, service *mach.SendRight) (*Remote, error) {
	return newRemote(name, service)
}

func newRemote(name string, service *mach.SendRight) (*Remote, error) {
	fail := func(err error) (*Remote, error) {
		return nil, &Error{Op: "dial", Name: name, Status: ErrInvalid, Err: err}
	}
	reply, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		service.Close()
		return fail(err)
	}
	// The service's death must end waiting requests at once, not at their deadlines: ask for a
	// dead-name notification on the reply port itself, where the reader already waits.
	prev, err := service.RequestDeadName(reply)
	if err != nil {
		reply.Close()
		service.Close()
		return fail(err)
	}
	if prev != nil {
		prev.Close()
	}
	r := &Remote{name: name, service: service, reply: reply, pending: map[int32]chan []byte{},
		invalid: make(chan struct{}), stopper: newStopper(), done: make(chan struct{})}
	go r.read()
	return r, nil
}

// Name returns the service name.
func (r *Remote) Name() string { return r.name }

// Invalidated returns a channel that is closed when the remote becomes invalid: the service died
// (its port is a dead name) or Close was called.
func (r *Remote) Invalidated() <-chan struct{} { return r.invalid }

func (r *Remote) invalidate(died bool) {
	r.invalidOnce.Do(func() {
		r.died.Store(died)
		close(r.invalid)
	})
}

// read receives replies and notifications on the reply port until Close's stop message.
func (r *Remote) read() {
	defer close(r.done)
	defer r.invalidate(false) // without a reader no reply can come: let requests fail, not hang
	var m mach.Message
	for {
		if err := mach.Receive(context.Background(), r.reply, &m); err != nil {
			if errors.Is(err, mach.ErrRejected) || errors.Is(err, mach.RcvTooLarge) {
				continue // destroyed, as CF drops what it cannot use
			}
			return // the port is gone
		}
		if r.stopper.is(&m) {
			return
		}
		if mach.IsNotificationID(m.ID) {
			r.notified(&m)
			_ = m.Destroy()
			continue
		}
		p, err := Decode(&m, true)
		if err == nil {
			r.mu.Lock()
			ch := r.pending[-p.ConvID]
			delete(r.pending, -p.ConvID)
			r.mu.Unlock()
			if ch != nil {
				ch <- append([]byte{}, p.Data...) // the message's memory goes with Destroy
				// Let the requester run now: the next Receive may block this thread in a
				// system call, and the runtime would take its time to hand the P over.
				runtime.Gosched()
			}
		}
		_ = m.Destroy() // a late, unknown or corrupt reply is dropped
	}
}

// notified acts on a kernel notification: the service's dead name, or a send-once right that
// died unused (the server's process exited holding it; CF then checks the service right).
func (r *Remote) notified(m *mach.Message) {
	n, err := mach.ParseNotification(m)
	if err != nil {
		return // forged by a peer
	}
	switch n.Kind {
	case mach.NotifyDeadName:
		_ = n.CloseDeadName()
		r.invalidate(true)
	case mach.NotifySendOnce:
		if t, err := mach.TypeOf(r.service.Name()); err == nil && t.Has(mach.TypeDeadName) {
			r.invalidate(true)
		}
	}
}

// nextConv returns the next conversation id: 1, 2, 3, ..., wrapping to 1 after the largest
// int32, because a request's id must stay positive.
func (r *Remote) nextConv() int32 {
	for {
		old := r.conv.Load()
		next := old + 1
		if next <= 0 {
			next = 1
		}
		if r.conv.CompareAndSwap(old, next) {
			return next
		}
	}
}

// Request sends msgid and data and waits for the reply, as CFMessagePortSendRequest does. The
// context's deadline bounds both the send (ErrSendTimeout) and the wait (ErrReceiveTimeout);
// cancelling it abandons the request (its reply, if it comes, is dropped). If the service dies
// meanwhile, Request fails with ErrBecameInvalid at once.
func (r *Remote) Request(ctx context.Context, msgid int32, data []byte) ([]byte, error) {
	const op = "request"
	ch := make(chan []byte, 1)
	conv, err := r.begin(op, ch)
	if err != nil {
		return nil, err
	}
	defer r.forget(conv)
	if err := r.send(ctx, op, Packet{MsgID: msgid, ConvID: conv, Data: data}, true); err != nil {
		return nil, err
	}
	select {
	case reply := <-ch:
		return reply, nil
	case <-r.invalid:
		select {
		case reply := <-ch: // it made it after all
			return reply, nil
		default:
		}
		return nil, r.invalidErr(op, true)
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, &Error{Op: op, Name: r.name, Status: ErrReceiveTimeout, Err: ctx.Err()}
		}
		return nil, &Error{Op: op, Name: r.name, Err: ctx.Err()}
	}
}

// Send sends msgid and data one way: no reply is asked for.
func (r *Remote) Send(ctx context.Context, msgid int32, data []byte) error {
	conv, err := r.begin("send", nil)
	if err != nil {
		return err
	}
	return r.send(ctx, "send", Packet{MsgID: msgid, ConvID: conv, Data: data}, false)
}

var (
	errClosed      = errors.New("the remote is closed")
	errServiceGone = errors.New("the service is gone")
)

// invalidErr is the error of an operation on an invalid remote. A service that died while the
// request waited gives ErrBecameInvalid (-5); one already known dead, or a closed remote, gives
// ErrInvalid (-3), as CF does.
func (r *Remote) invalidErr(op string, waited bool) error {
	switch {
	case !r.died.Load():
		return &Error{Op: op, Name: r.name, Status: ErrInvalid, Err: errClosed}
	case waited:
		return &Error{Op: op, Name: r.name, Status: ErrBecameInvalid}
	default:
		return &Error{Op: op, Name: r.name, Status: ErrInvalid, Err: errServiceGone}
	}
}

// begin takes a conversation id and, for a request, registers where its reply goes.
func (r *Remote) begin(op string, ch chan []byte) (int32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.invalid:
		return 0, r.invalidErr(op, false)
	default:
	}
	conv := r.nextConv()
	for r.pending[conv] != nil { // after a wrap, skip ids still waiting for their replies
		conv = r.nextConv()
	}
	if ch != nil {
		r.pending[conv] = ch
	}
	return conv, nil
}

func (r *Remote) forget(conv int32) {
	r.mu.Lock()
	delete(r.pending, conv)
	r.mu.Unlock()
}

func (r *Remote) send(ctx context.Context, op string, p Packet, wantReply bool) error {
	if len(p.Data) > MaxPayload {
		return &Error{Op: op, Name: r.name, Status: ErrTransport, Err: ErrTooLarge}
	}
	var local mach.Port
	if wantReply {
		local = mach.MakeSendOnceOf(r.reply)
	}
	for {
		var m mach.Message
		if err := p.Encode(&m, mach.CopySendOf(r.service), local); err != nil {
			return &Error{Op: op, Name: r.name, Status: ErrTransport, Err: err}
		}
		// A send to a full queue blocks; without a deadline it is made in slices, so that
		// cancelling the context or closing the remote ends it.
		sctx, cancel := ctx, context.CancelFunc(func() {})
		_, hasDeadline := ctx.Deadline()
		if !hasDeadline {
			sctx, cancel = context.WithTimeout(ctx, sendSlice)
		}
		err := mach.Send(sctx, &m)
		cancel()
		if err == nil {
			return nil
		}
		status := ErrTransport
		switch {
		case errors.Is(err, mach.SendTimedOut) && !hasDeadline && ctx.Err() == nil:
			select {
			case <-r.invalid:
				return r.invalidErr(op, false)
			default:
				continue // the slice ended, not the caller's time
			}
		case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
			return &Error{Op: op, Name: r.name, Err: ctx.Err()}
		case errors.Is(err, mach.SendTimedOut):
			status = ErrSendTimeout
		case errors.Is(err, mach.SendInvalidDest):
			r.invalidate(true)
		}
		return &Error{Op: op, Name: r.name, Status: status, Err: err}
	}
}

// sendSlice is how long one attempt of a send without a deadline waits for room in the queue.
const sendSlice = 50 * time.Millisecond

// Close invalidates the remote: waiting requests, including ones blocked sending to a full
// queue, fail with ErrInvalid; the reply port is destroyed (with any late reply) and the send
// right released. Safe to call more than once.
func (r *Remote) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	r.invalidate(false)
	if err := r.stopper.send(r.reply); err == nil {
		<-r.done
	}
	// Release the service right first, which ends its dead-name request, then whatever
	// notifications are queued (a dead-name one carries a reference of the dead name).
	err := r.service.Close()
	mach.Drain(r.reply)
	if rerr := r.reply.Close(); err == nil {
		err = rerr
	}
	return err
}
