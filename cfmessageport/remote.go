package cfmessageport

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/peer"
)

// Remote is a client of a CFMessagePort service, what CFMessagePortCreateRemote gives in CF. It
// is safe for many goroutines at once: each request carries its own conversation id and replies
// are matched by it, so they may come back in any order.
//
// Replies are received by the requesters themselves, one at a time (leader/follower): a request
// that finds nobody receiving on the reply port receives there itself until its own reply comes,
// handing the replies of other conversations to their requesters and, when it leaves, the
// receiving to one of them. A lone requester thus waits in the receive itself, as a raw mach
// client does, with no goroutine hand-off per reply. The service's death is watched on a
// separate notification port, shared by every Remote of the service in the process, by a
// goroutine that is idle otherwise, so that it is noticed with no request in flight too. Any
// number of Remotes of one service may be open at once. A late reply that comes while no request waits stays queued until
// the next request receives and drops it, or Close destroys it.
type Remote struct {
	name    string
	service *mach.SendRight
	reply   *mach.ReceiveRight // one reply port for all requests, as CF keeps
	death   *deathWatch        // tells of the service's death

	conv atomic.Int32

	mu         sync.Mutex
	pending    map[int32]*waiter // requests waiting for their replies, by conversation id
	receiving  bool              // a requester receives on the reply port (it leads)
	closed     bool
	leaderGone chan struct{} // made by Close when a requester leads; closed when it stops

	// in is the leader's receive buffer, reused from reply to reply; only the leader touches it.
	in mach.Message

	invalid     chan struct{} // closed when the service died or the remote was closed
	invalidOnce sync.Once
	died        atomic.Bool // the service died (rather than the remote being closed)
	woken       bool        // invalidate sent the reply port its stop message; set within invalidOnce

	// require, when set, is what the sender of every reply must meet; rejected holds the
	// rejection (an error wrapping ErrPeerRejected) once a reply failed it.
	require  *peer.Requirement
	rejected atomic.Pointer[error]

	stopper stopper

	cf *cfRemote // set on the public-API-only path (viacf.go): no ports of its own
}

// waiter is one request waiting for its reply. Its fields are guarded by Remote.mu.
type waiter struct {
	reply reply
	done  bool // reply is set: the leader delivered it
	left  bool // the requester stopped waiting: a reply delivered now is released by the leader
	lead  bool // the leader left and handed the receiving to this requester
	// wake is made when the requester waits for another requester (the leader) to deliver; it
	// is signalled when the reply is delivered or the receiving is handed over.
	wake chan struct{}

	// The requester's own, kept with the waiter when it is recycled, so that a request takes
	// one thing from a pool rather than three: the message its request is sent from (nil after
	// one that carried out-of-line memory, see putOutMessage), and its send's deadline.
	out   *mach.Message
	slice sliceContext
}

func (w *waiter) signal() {
	if w.wake != nil {
		select {
		case w.wake <- struct{}{}:
		default: // signalled already; the requester looks at the fields again anyway
		}
	}
}

// DialOptions tune DialWithOptions.
type DialOptions struct {
	// PID, when not 0, dials the per-process service of process PID (as DialPID).
	PID int
	// Require, when set, is what the server must meet (see package peer). It is checked on the
	// audit trailer of every reply: the first reply that fails it is dropped, and the Remote
	// becomes invalid with an error wrapping ErrPeerRejected and the *peer.CheckError that names
	// the failed predicate (the requests waiting fail with it, and so does every later one).
	// A process that registered the name before the real server (a squatter) is so caught at
	// its first reply, before any of its replies is trusted. Nothing is checked before the first
	// reply: a request's data reaches whoever serves the name.
	Require *peer.Requirement
}

// DialWithOptions is Dial, or DialPID when opts.PID is set, with a requirement on the server
// (opts may be nil).
func DialWithOptions(ctx context.Context, name string, opts *DialOptions) (*Remote, error) {
	if viaCoreFoundation {
		return dialCF(ctx, name, opts, false)
	}
	if opts == nil {
		opts = &DialOptions{}
	}
	var s *mach.SendRight
	var err error
	if opts.PID != 0 {
		s, err = bootstrap.LookUpPID(ctx, name, opts.PID)
	} else {
		s, err = bootstrap.LookUp(ctx, name)
	}
	if err != nil {
		return nil, &Error{Op: "dial", Name: name, Err: err}
	}
	r, err := newRemote(name, s)
	if err != nil {
		return nil, err
	}
	r.require = opts.Require
	return r, nil
}

// Dial looks name up (bootstrap_look_up) and returns a Remote for it (DialWithOptions takes a
// requirement on the server).
//
// A failed Dial carries no CF status: CFMessagePortCreateRemote has none to give (it returns
// NULL). Its error matches the cause alone: bootstrap.ErrUnknownService when no live server has
// the name (never registered, withdrawn, or its server killed, also when the right the look-up
// gave is already dead), bootstrap.ErrNotPrivileged when the sandbox refuses it (with the
// sandboxcheck rule that predicted it, if any), and the sandboxcheck rule of an invalid name.
//
// Any number of Remotes of one service may be open in a process at once, and each learns of
// the service's death at once (they share one dead-name request, as Mach keeps one per name).
func Dial(ctx context.Context, name string) (*Remote, error) {
	return DialWithOptions(ctx, name, nil)
}

// DialPID is Dial for the per-process service name of process pid.
func DialPID(ctx context.Context, name string, pid int) (*Remote, error) {
	if viaCoreFoundation {
		return dialCF(ctx, name, nil, true)
	}
	if pid == 0 {
		// Not DialWithOptions' "no pid": pid 0 is the kernel's, which serves no names.
		s, err := bootstrap.LookUpPID(ctx, name, 0)
		if err != nil {
			return nil, &Error{Op: "dial", Name: name, Err: err}
		}
		return newRemote(name, s)
	}
	return DialWithOptions(ctx, name, &DialOptions{PID: pid})
}

// NewRemote makes a Remote for a send right obtained some other way (it takes ownership of it).
// A right that is already dead fails with bootstrap.ErrUnknownService, as in Dial.
func NewRemote(name string, service *mach.SendRight) (*Remote, error) {
	return newRemote(name, service)
}

// errServerGone is the cause of a Dial whose right died between the look-up and the Remote:
// no live server has the name, as a look-up a moment later would say.
var errServerGone = fmt.Errorf("the service's right is a dead name, its server is gone: %w", bootstrap.ErrUnknownService)

func newRemote(name string, service *mach.SendRight) (*Remote, error) {
	fail := func(err error, ports ...*mach.ReceiveRight) (*Remote, error) {
		service.Close()
		for _, p := range ports {
			p.Close()
		}
		return nil, &Error{Op: "dial", Name: name, Err: err}
	}
	// CF refuses a dead name in the same place (_CFMachPortCreateWithPort2, CFMachPort.c, returns
	// NULL when mach_port_type says the name is no port right, and CFMessagePortCreateRemote
	// with it). Checked before the dead-name request, which older kernels (and the emulation)
	// answer for a dead name with an immediate notification and a Remote that is invalid from
	// the start.
	if isDead(service) {
		return fail(errServerGone)
	}
	reply, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return fail(err)
	}
	r := &Remote{name: name, service: service, reply: reply,
		pending: map[int32]*waiter{}, invalid: make(chan struct{}), stopper: newStopper()}
	// The service's death must end waiting requests at once, not at their deadlines, and be
	// seen while no request is in flight.
	if r.death, err = watchDeath(service, r); err != nil {
		return fail(err, reply)
	}
	return r, nil
}

// isDead reports whether a send right's port is gone: the right is MACH_PORT_DEAD, or its name
// has become a dead name.
func isDead(s *mach.SendRight) bool {
	n := s.Name()
	if n == mach.NameDead {
		return true
	}
	t, err := mach.TypeOf(n)
	return err == nil && t.Has(mach.TypeDeadName)
}

// Name returns the service name.
func (r *Remote) Name() string { return r.name }

// Invalidated returns a channel that is closed when the remote becomes invalid: the service died
// (its port is a dead name) or Close was called.
func (r *Remote) Invalidated() <-chan struct{} { return r.invalid }

// invalidate marks the remote invalid and wakes the requester receiving on the reply port, if
// any: it may be blocked in a receive that only a message ends.
func (r *Remote) invalidate(died bool) {
	r.invalidOnce.Do(func() {
		r.died.Store(died)
		close(r.invalid)
		// A send-once message is not held back by a full queue, so this never blocks. A stop
		// message nobody receives is drained by Close.
		r.woken = r.stopper.send(r.reply) == nil
	})
}

func (r *Remote) isInvalid() bool {
	select {
	case <-r.invalid:
		return true
	default:
		return false
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

// reply is a reply's data as it came: copied from an inline message, or, out of line, still in
// the memory the message mapped (region), which moved to the requester without a copy.
type reply struct {
	data   []byte
	region *mach.Region    // nil for inline data
	from   mach.AuditToken // the sender of the reply
}

// takeReply takes the data of p, decoded from m, out of m before m is destroyed or reused.
func takeReply(m *mach.Message, p wire.Packet) reply {
	if len(m.Descriptors) == 1 {
		if region, err := m.TakeRegion(0); err == nil {
			return reply{data: p.Data, region: region, from: m.Trailer.Audit} // p.Data lies in region's memory
		}
	}
	return reply{data: append([]byte{}, p.Data...), from: m.Trailer.Audit}
}

// owned returns the data in memory of the caller's own, releasing the mapped memory.
func (rep reply) owned() []byte {
	if rep.region == nil {
		return rep.data
	}
	b := append([]byte{}, rep.data...)
	rep.release()
	return b
}

// release gives back the mapped memory of an out-of-line reply.
func (rep reply) release() {
	if rep.region != nil {
		_ = rep.region.Close()
	}
}

// Request sends msgid and data and waits for the reply, as CFMessagePortSendRequest does. The
// context's deadline bounds both the send (ErrSendTimeout) and the wait (ErrReceiveTimeout);
// cancelling it abandons the request (its reply, if it comes, is dropped). If the service dies
// meanwhile, Request fails with ErrBecameInvalid at once. The reply is the caller's to keep;
// RequestFunc reads a large one where it arrived, without the copy. Nil data goes out as CF sends
// NULL data (byteslen -1), empty data as empty (0); servers hand the handler empty data either way.
func (r *Remote) Request(ctx context.Context, msgid int32, data []byte) ([]byte, error) {
	if r.cf != nil {
		return r.cf.requestCF(ctx, r, "request", msgid, data, true)
	}
	rep, err := r.request(ctx, msgid, data)
	if err != nil {
		return nil, err
	}
	return rep.owned(), nil
}

// RequestFrom is Request that also returns the audit token of the process that sent the reply
// (its pid, uid, ...), from the reply's trailer: who answered, where a name could be served by
// another process than the one expected (see DialOptions.Require to insist on one).
func (r *Remote) RequestFrom(ctx context.Context, msgid int32, data []byte) ([]byte, mach.AuditToken, error) {
	if r.cf != nil {
		return r.requestFromCF()
	}
	rep, err := r.request(ctx, msgid, data)
	if err != nil {
		return nil, mach.AuditToken{}, err
	}
	return rep.owned(), rep.from, nil
}

// RequestFunc is Request for replies read once: read gets the reply's data, valid only until it
// returns, and RequestFunc returns read's error. An out-of-line reply (above InlineLimit bytes)
// is read in the memory it arrived in, which is released afterwards, instead of being copied
// into memory of the caller's own as Request does; read must not keep it, nor modify it.
func (r *Remote) RequestFunc(ctx context.Context, msgid int32, data []byte, read func(reply []byte) error) error {
	if r.cf != nil {
		reply, err := r.cf.requestCF(ctx, r, "request", msgid, data, true)
		if err != nil {
			return err
		}
		return read(reply)
	}
	rep, err := r.request(ctx, msgid, data)
	if err != nil {
		return err
	}
	defer rep.release()
	return read(rep.data)
}

func (r *Remote) request(ctx context.Context, msgid int32, data []byte) (reply, error) {
	const op = "request"
	w := getWaiter()
	conv, err := r.begin(op, w)
	if err != nil {
		putWaiter(w) // never registered
		return reply{}, err
	}
	if err := r.send(ctx, op, wire.Packet{MsgID: msgid, ConvID: conv, Data: data, NoData: data == nil}, w); err != nil {
		r.abandon(conv, w)
		return reply{}, err
	}
	rep, err := r.await(ctx, op, conv, w)
	if err == nil {
		// Its reply came: it is out of pending, and whoever delivered it is done with it (deliver
		// sets done last, under mu). A waiter that left early is not recycled: a leader may
		// still be delivering to it.
		putWaiter(w)
	}
	return rep, err
}

// waiters recycles the waiters of requests that got their replies. Not their wake channels: a
// waiter with one is a requester waiting for another to deliver (leave, followers).
var waiters = sync.Pool{New: func() any { return new(waiter) }}

func getWaiter() *waiter { return waiters.Get().(*waiter) }

func putWaiter(w *waiter) {
	*w = waiter{out: w.out}
	waiters.Put(w)
}

// abandon ends a request whose send failed. A leader may already have delivered it a reply (a
// server that answered with this conversation's id early, or a late reply after the ids
// wrapped): that reply's memory is released here, since nobody will read it.
func (r *Remote) abandon(conv int32, w *waiter) {
	r.mu.Lock()
	r.leave(conv, w)
	stray, delivered := w.reply, w.done
	w.reply, w.done = reply{}, false
	r.mu.Unlock()
	if delivered {
		stray.release()
	}
}

// await waits for the reply of conversation conv: by receiving on the reply port itself when
// nobody else does, or else until the receiving requester delivers the reply or hands the
// receiving over.
func (r *Remote) await(ctx context.Context, op string, conv int32, w *waiter) (reply, error) {
	for {
		r.mu.Lock()
		switch {
		case w.done:
			if w.lead { // cannot happen: nobody delivers while the receiving is handed over
				r.leave(conv, w)
			}
			r.mu.Unlock()
			return w.reply, nil
		case r.closed:
			r.leave(conv, w)
			r.mu.Unlock()
			return reply{}, r.invalidErr(op, true)
		case w.lead || !r.receiving:
			// On a remote that became invalid, lead takes what replies are still queued (the
			// service may have answered before it died) and fails once the queue is empty.
			w.lead, r.receiving = false, true
			r.mu.Unlock()
			return r.lead(ctx, op, conv, w)
		}
		if w.wake == nil {
			w.wake = make(chan struct{}, 1)
		}
		// Once the remote is invalid, the requester receiving delivers what is queued and then
		// hands the receiving over, which wakes this one: failing at invalidation instead would
		// drop a reply that is already queued.
		invalid := r.invalid
		if r.isInvalid() {
			invalid = nil
		}
		r.mu.Unlock()
		select {
		case <-w.wake:
		case <-invalid:
		case <-ctx.Done():
			r.mu.Lock()
			if w.done { // it made it after all
				r.mu.Unlock()
				return w.reply, nil
			}
			r.leave(conv, w)
			r.mu.Unlock()
			return reply{}, r.ctxErr(op, ctx, nil)
		}
	}
}

// lead receives on the reply port until conversation conv's reply comes, delivering the
// replies of other conversations to their requesters. Whatever ends it, it leaves the receiving
// to another waiting requester.
func (r *Remote) lead(ctx context.Context, op string, conv int32, w *waiter) (reply, error) {
	m := &r.in
	for {
		rctx := ctx
		invalid := r.isInvalid()
		if invalid {
			// The service is gone, but the replies it sent before it went may be queued still
			// (its death reaches the notification port apart from them): take those first, with
			// receives that only poll, and fail once the queue is empty.
			var cancel context.CancelFunc
			rctx, cancel = context.WithDeadline(ctx, time.Time{})
			cancel() // an expired context: Receive polls
		}
		if err := mach.ReceiveWithOptions(rctx, r.reply, m, receiveOptions); err != nil {
			switch {
			case mach.MessageDropped(err):
				continue
			case invalid && ctx.Err() == nil && errors.Is(err, mach.RcvTimedOut):
				return r.stopLeading(conv, w, reply{}, r.invalidErr(op, true)) // nothing left queued
			case ctx.Err() != nil || errors.Is(err, mach.RcvTimedOut):
				return r.stopLeading(conv, w, reply{}, r.ctxErr(op, ctx, err))
			}
			// The port is gone: no reply can come any more.
			r.invalidate(false)
			return r.stopLeading(conv, w, reply{}, r.invalidErr(op, true))
		}
		if r.stopper.is(m) {
			_ = m.Destroy()
			continue // sent by invalidate: the loop's check ends the wait
		}
		if mach.IsNotificationID(m.ID) {
			r.notified(m)
			_ = m.Destroy()
			continue
		}
		if r.require != nil {
			if err := r.require.Check(m.Trailer.Audit); err != nil {
				_ = m.Destroy() // not read: its sender is not trusted
				r.reject(err)
				return r.stopLeading(conv, w, reply{}, r.invalidErr(op, true))
			}
		}
		p, err := wire.Decode(m, true)
		if err != nil {
			_ = m.Destroy() // corrupt: dropped
			continue
		}
		if -p.ConvID == conv {
			rep := takeReply(m, p) // before Destroy, which would release the memory
			_ = m.Destroy()
			return r.stopLeading(conv, w, rep, nil)
		}
		r.deliver(-p.ConvID, m, p)
		_ = m.Destroy() // a late or unknown reply is dropped
	}
}

// deliver moves the reply p, decoded from m, to the requester waiting for conversation conv, if
// one does; an out-of-line reply's memory moves with it, not copied.
func (r *Remote) deliver(conv int32, m *mach.Message, p wire.Packet) {
	r.mu.Lock()
	w := r.pending[conv]
	delete(r.pending, conv)
	r.mu.Unlock()
	if w == nil {
		return
	}
	rep := takeReply(m, p) // outside the lock: an inline copy may be 4000 bytes
	r.mu.Lock()
	if w.left { // it stopped waiting meanwhile (cancelled, or the remote became invalid)
		r.mu.Unlock()
		rep.release()
		return
	}
	w.reply, w.done = rep, true
	w.signal()
	r.mu.Unlock()
}

// stopLeading ends the leader's receiving and its request, and returns rep, err.
func (r *Remote) stopLeading(conv int32, w *waiter, rep reply, err error) (reply, error) {
	r.mu.Lock()
	r.receiving = false
	r.leave(conv, w)
	r.mu.Unlock()
	return rep, err
}

// leave takes a request that stops waiting out of pending and, if it was told to take over the
// receiving (or held it), passes the receiving to another waiting requester, so that no reply
// is stranded. Called with mu held.
func (r *Remote) leave(conv int32, w *waiter) {
	w.left = true
	if r.pending[conv] == w {
		delete(r.pending, conv)
	}
	if w.lead {
		w.lead, r.receiving = false, false
	}
	if r.receiving {
		return
	}
	if r.closed {
		// Nobody receives again: waiting requesters see closed. Close waits for this.
		if r.leaderGone != nil {
			close(r.leaderGone)
			r.leaderGone = nil
		}
		for _, next := range r.pending {
			next.signal()
		}
		return
	}
	for _, next := range r.pending {
		if next.wake != nil && !next.done {
			next.lead, r.receiving = true, true
			next.signal()
			return
		}
	}
	// Requests still sending take the receiving when they start to wait.
}

// ctxErr is the error of a request whose context ended while it waited for its reply.
func (r *Remote) ctxErr(op string, ctx context.Context, err error) error {
	cerr := ctx.Err()
	if errors.Is(cerr, context.DeadlineExceeded) || cerr == nil && errors.Is(err, mach.RcvTimedOut) {
		return &Error{Op: op, Name: r.name, Status: ErrReceiveTimeout, Err: context.DeadlineExceeded}
	}
	return &Error{Op: op, Name: r.name, Err: cerr}
}

// Send sends msgid and data one way: no reply is asked for.
func (r *Remote) Send(ctx context.Context, msgid int32, data []byte) error {
	if r.cf != nil {
		_, err := r.cf.requestCF(ctx, r, "send", msgid, data, false)
		return err
	}
	conv, err := r.begin("send", nil)
	if err != nil {
		return err
	}
	return r.send(ctx, "send", wire.Packet{MsgID: msgid, ConvID: conv, Data: data, NoData: data == nil}, nil)
}

var (
	errClosed      = errors.New("the remote is closed")
	errServiceGone = errors.New("the service is gone")
)

// reject invalidates the remote because a reply's sender failed the requirement (err, a
// *peer.CheckError), once: the first rejection is the one every request reports.
func (r *Remote) reject(err error) {
	rej := fmt.Errorf("%w: %w", ErrPeerRejected, err)
	r.rejected.CompareAndSwap(nil, &rej)
	r.invalidate(false)
}

// invalidErr is the error of an operation on an invalid remote. An invalidation while the request
// waited for its reply, whatever its cause (Close, the service's death, a rejected reply), gives
// ErrBecameInvalid (-5); a remote already invalid when the operation began gives ErrInvalid (-3).
// CF does the same: CFMessagePortSendRequest returns kCFMessagePortIsInvalid when the remote is
// invalid on entry, and kCFMessagePortBecameInvalidError when no reply came and the remote is no
// longer valid after the wait (CFMessagePort.c, CFMessagePortSendRequest).
func (r *Remote) invalidErr(op string, waited bool) error {
	status := ErrInvalid
	if waited {
		status = ErrBecameInvalid
	}
	switch rej := r.rejected.Load(); {
	case rej != nil:
		return &Error{Op: op, Name: r.name, Status: status, Err: *rej}
	case !r.died.Load():
		return &Error{Op: op, Name: r.name, Status: status, Err: errClosed}
	case waited:
		return &Error{Op: op, Name: r.name, Status: status}
	default:
		return &Error{Op: op, Name: r.name, Status: status, Err: errServiceGone}
	}
}

// begin takes a conversation id and, for a request, registers where its reply goes.
func (r *Remote) begin(op string, w *waiter) (int32, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.isInvalid() {
		return 0, r.invalidErr(op, false)
	}
	conv := r.nextConv()
	for r.pending[conv] != nil { // after a wrap, skip ids still waiting for their replies
		conv = r.nextConv()
	}
	if w != nil {
		r.pending[conv] = w
	}
	return conv, nil
}

// send sends p, with a reply right for the request of waiter w (nil for a one-way send), whose
// message and deadline it uses.
func (r *Remote) send(ctx context.Context, op string, p wire.Packet, w *waiter) error {
	if len(p.Data) > wire.MaxPayload {
		return &Error{Op: op, Name: r.name, Status: ErrTransport, Err: wire.ErrTooLarge}
	}
	var local mach.Port
	var m *mach.Message
	var sctx *sliceContext
	if w != nil {
		local = mach.MakeSendOnceOf(r.reply)
		if w.out == nil {
			w.out = new(mach.Message)
		}
		m, sctx = w.out, &w.slice
		defer func() {
			if len(m.Descriptors) > 0 {
				w.out = nil // as putOutMessage: out-of-line memory may still be referred to
			}
			m.Remote, m.Local, m.Voucher = mach.Port{}, mach.Port{}, mach.Port{}
		}()
	} else {
		m = getOutMessage()
		defer putOutMessage(m)
		sctx = sliceContexts.Get().(*sliceContext)
		defer sliceContexts.Put(sctx)
	}
	for {
		if err := p.EncodeInto(m, mach.CopySendOf(r.service), local); err != nil {
			return &Error{Op: op, Name: r.name, Status: ErrTransport, Err: err}
		}
		// A send to a full queue blocks; without a deadline it is made in slices, so that
		// cancelling the context or closing the remote ends it.
		_, hasDeadline := ctx.Deadline()
		var err error
		if hasDeadline {
			err = mach.Send(ctx, m)
		} else {
			*sctx = sliceContext{ctx, time.Now().Add(sendSlice)}
			err = mach.Send(sctx, m)
			*sctx = sliceContext{}
		}
		if err == nil {
			return nil
		}
		status := ErrTransport
		switch {
		case errors.Is(err, mach.ErrClosed) && r.isInvalid():
			return r.invalidErr(op, false) // Close released the rights while this waited
		case errors.Is(err, mach.SendTimedOut) && !hasDeadline && ctx.Err() == nil:
			if r.isInvalid() {
				return r.invalidErr(op, false)
			}
			continue // the slice ended, not the caller's time
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

// sliceContext is a context with a deadline that is only a send timeout: mach.Send turns the
// deadline into MACH_SEND_TIMEOUT and reads nothing else but Err. Unlike context.WithTimeout it
// arms no timer, which every request would pay for though sends to a full queue are rare; its
// Done and Err stay the parent's, so cancelling the parent still counts.
type sliceContext struct {
	context.Context
	deadline time.Time
}

func (c sliceContext) Deadline() (time.Time, bool) { return c.deadline, true }

// sliceContexts recycles sliceContexts: one made for each send would be an allocation (a
// struct converted to an interface), and mach.Send keeps no reference to its context.
var sliceContexts = sync.Pool{New: func() any { return new(sliceContext) }}

// Close invalidates the remote: requests waiting for their replies fail with ErrBecameInvalid
// (-5), as CF's do when their remote is invalidated, and ones still blocked sending to a full
// queue with ErrInvalid (-3); the reply port is destroyed (with any late reply) and the send
// right released. Safe to call more than once.
func (r *Remote) Close() error {
	if r.cf != nil {
		return r.cf.close(r)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	for _, w := range r.pending { // a requester waiting on an invalid remote waits only for this
		w.signal()
	}
	var leaderGone chan struct{}
	if r.receiving {
		r.leaderGone = make(chan struct{})
		leaderGone = r.leaderGone
	}
	r.mu.Unlock()
	r.invalidate(false) // wakes the receiving requester
	if leaderGone != nil && r.woken {
		// Wait until it no longer uses the reply port. (Had the stop message failed, closing
		// the port below would end its receive instead.)
		<-leaderGone
	}
	// Leave the death watch before releasing the service right (the last Remote ends its
	// dead-name request), then release the replies and stop messages nobody received.
	r.death.unsubscribe(r)
	err := r.service.Close()
	mach.Drain(r.reply)
	if rerr := r.reply.Close(); err == nil {
		err = rerr
	}
	return err
}
