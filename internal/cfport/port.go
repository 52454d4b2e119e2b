package cfport

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Local is a service made by CFMessagePortCreateLocal: CoreFoundation registers the name and
// calls the handler for each request, one at a time, on the port's dispatch queue.
type Local struct {
	name    string
	handler Handler
	handle  uintptr // what CF hands the callout as its info, never a Go pointer
	ref     uintptr // the CFMessagePortRef
	queue   uintptr // its dispatch queue

	mu     sync.Mutex
	closed bool
}

// locals maps a Local's handle to the Local, for the callout.
var (
	locals     sync.Map
	lastHandle atomic.Uintptr
)

// CreateLocal serves name with CoreFoundation's CFMessagePortCreateLocal (or the per-process
// variant), dispatching requests to h on a private serial queue.
func CreateLocal(name string, h Handler, opts *Options) (*Local, error) {
	if opts == nil {
		opts = &Options{}
	}
	l := &Local{name: name, handler: h, handle: lastHandle.Add(1)}
	locals.Store(l.handle, l)
	ref, queue, err := createLocal(name, opts.PerPID, l.handle)
	if err != nil {
		locals.Delete(l.handle)
		return nil, &OpError{Op: "create local", Name: name, Err: err}
	}
	l.ref, l.queue = ref, queue
	return l, nil
}

// serve runs the handler of the Local with this handle; CF's callout calls it.
func serve(handle uintptr, msgid int32, data []byte) (reply []byte) {
	v, ok := locals.Load(handle)
	if !ok {
		return nil // closed meanwhile
	}
	defer func() {
		if recover() != nil {
			reply = nil
		}
	}()
	return v.(*Local).handler(msgid, data)
}

// Name returns the served name.
func (l *Local) Name() string { return l.name }

// IsValid calls CFMessagePortIsValid.
func (l *Local) IsValid() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.closed && isValid(l.ref)
}

// Close invalidates the port (CFMessagePortInvalidate), which withdraws the name, and releases it
// and its queue. Safe to call more than once.
func (l *Local) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	locals.Delete(l.handle)
	closeLocal(l.ref, l.queue)
	return nil
}

// Remote is a client made by CFMessagePortCreateRemote (or the per-process variant).
//
// CF makes one remote per name in a process (__CFMessagePortCreateRemote's cache), with one
// reply port, and CFMessagePortSendRequest receives on it by running the calling thread's run
// loop. With two calls waiting on one remote, a reply may be received by the other thread's run
// loop, which stores it (_replies) but does not wake the thread it is for: that one waits until
// its timeout. So the Remotes of a name take turns: one CFMessagePortSendRequest at a time per
// name in this process (lane).
type Remote struct {
	name string
	lane *lane

	mu      sync.RWMutex // held for reading by calls, for writing by Close
	closed  bool
	closing chan struct{} // closed when Close starts
	once    sync.Once

	// Guarded by lanesMu; changed only while holding the lane's turn (or mu for writing).
	ref   uintptr
	stale bool // ref was invalidated to end a wait (abort): made anew at the next call
	opts  Options
}

// lane is the turn of the Remotes of one name (one CF remote) in this process.
type lane struct {
	key  string
	turn chan struct{} // holds one token while a Remote calls CF

	// The call in progress, guarded by mu.
	mu       sync.Mutex
	owner    *Remote
	ref      uintptr
	runLoop  uintptr       // the waiting thread's run loop; 0 until known or once returned
	done     chan struct{} // closed when the call returned
	aborting bool

	remotes map[*Remote]struct{} // guarded by lanesMu
}

var (
	lanesMu sync.Mutex
	lanes   = map[string]*lane{}
)

func laneKey(name string, opts Options) string {
	if opts.PerPID {
		return fmt.Sprintf("%s\x00pid %d", name, opts.PID)
	}
	return name
}

// OnQueued, when set by a test, is called when a Request waits for another Request of its name.
var OnQueued func(name string)

// CreateRemote looks name up as CFMessagePortCreateRemote does; with opts.PerPID it calls the
// per-process service of opts.PID.
func CreateRemote(name string, opts *Options) (*Remote, error) {
	if opts == nil {
		opts = &Options{}
	}
	ref, err := createRemote(name, opts.PerPID, opts.PID)
	if err != nil {
		return nil, &OpError{Op: "create remote", Name: name, Err: err}
	}
	r := &Remote{name: name, ref: ref, opts: *opts, closing: make(chan struct{})}
	key := laneKey(name, *opts)
	lanesMu.Lock()
	l := lanes[key]
	if l == nil {
		l = &lane{key: key, turn: make(chan struct{}, 1), remotes: map[*Remote]struct{}{}}
		lanes[key] = l
	}
	l.remotes[r] = struct{}{}
	r.lane = l
	lanesMu.Unlock()
	return r, nil
}

// Name returns the service name.
func (r *Remote) Name() string { return r.name }

// Request sends msgid and data with CFMessagePortSendRequest and waits for the reply; timeout
// bounds both the send and the wait, as CF's sendTimeout and rcvTimeout. nil data sends CF's
// "no data" (byteslen -1). The status is CF's; the reply is nil unless it is Success.
func (r *Remote) Request(msgid int32, data []byte, timeout time.Duration) ([]byte, Status) {
	return r.Call(nil, msgid, data, timeout, true)
}

// Send sends msgid and data one way (CFMessagePortSendRequest with no reply mode).
func (r *Remote) Send(msgid int32, data []byte, timeout time.Duration) Status {
	_, status := r.Call(nil, msgid, data, timeout, false)
	return status
}

// Call is Request (wantReply) or Send, ended early when cancel is closed: a call waiting for its
// turn returns BecameInvalid at once; a call in CF is ended as CF ends a wait whose remote was
// invalidated (abort), and returns CF's status, BecameInvalid. The Remote stays usable: its next
// call looks the name up again, as do the other Remotes of the name, since CF's remote is shared.
// What abort cannot end is the send itself: a request or one-way message blocked in mach_msg on
// the service's full queue waits until its timeout or the service's death (CF's send is no run
// loop wait).
func (r *Remote) Call(cancel <-chan struct{}, msgid int32, data []byte, timeout time.Duration, wantReply bool) ([]byte, Status) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, IsInvalid
	}
	l := r.lane
	select {
	case l.turn <- struct{}{}:
	default:
		if hook := OnQueued; hook != nil {
			hook(r.name)
		}
		select {
		case l.turn <- struct{}{}:
		case <-r.closing:
			return nil, IsInvalid
		case <-cancel:
			return nil, BecameInvalid
		}
	}
	defer func() { <-l.turn }()
	if err := r.renew(); err != nil {
		return nil, IsInvalid // the service is gone
	}
	lanesMu.Lock()
	ref := r.ref
	lanesMu.Unlock()
	done := make(chan struct{})
	l.mu.Lock()
	l.owner, l.ref, l.runLoop, l.done, l.aborting = r, ref, 0, done, false
	l.mu.Unlock()
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go func() {
		select {
		case <-cancel:
		case <-r.closing:
		case <-stopWatch:
			return
		}
		l.abort(r, done)
	}()
	reply, status := sendRequest(ref, msgid, data, seconds(timeout), wantReply, func(rl uintptr) {
		l.mu.Lock()
		l.runLoop = rl
		l.mu.Unlock()
	})
	l.mu.Lock()
	aborted := l.aborting
	l.owner, l.ref, l.runLoop, l.done = nil, 0, 0, nil
	close(done)
	l.mu.Unlock()
	if aborted {
		r.markStale(ref)
	}
	return reply, status
}

// abort ends r's call in CF as CF itself ends a wait on a remote that became invalid
// (CFMessagePort.c, CFMessagePortSendRequest: after each CFRunLoopRunInMode, an invalid remote
// ends the loop with kCFMessagePortBecameInvalidError): it invalidates the remote and stops the
// waiting thread's run loop. CFRunLoopStop acts only while the loop runs (CFRunLoop.c), and the
// thread may be between runs or not yet in CF, so the stop is repeated until the call returns.
func (l *lane) abort(r *Remote, done chan struct{}) {
	l.mu.Lock()
	if l.owner != r || l.done != done {
		l.mu.Unlock()
		return
	}
	l.aborting = true
	invalidate(l.ref)
	l.mu.Unlock()
	wait := 100 * time.Microsecond
	for {
		l.mu.Lock()
		if l.done == done && l.runLoop != 0 {
			stopRunLoop(l.runLoop)
		}
		l.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-done:
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// renew looks the name up again if the Remote's CF remote was invalidated to end a wait. Called
// while holding the lane's turn.
func (r *Remote) renew() error {
	lanesMu.Lock()
	stale := r.stale
	lanesMu.Unlock()
	if !stale {
		return nil
	}
	ref, err := createRemote(r.name, r.opts.PerPID, r.opts.PID)
	if err != nil {
		// The service is gone: the invalidated remote stays, and IsValid reports it.
		lanesMu.Lock()
		r.stale = false
		lanesMu.Unlock()
		return err
	}
	lanesMu.Lock()
	old := r.ref
	r.ref, r.stale = ref, false
	lanesMu.Unlock()
	closeRemote(old)
	return nil
}

// markStale records that ref was invalidated to end a wait, not by the service's death: the
// Remotes of the lane that hold it look the name up again at their next call. Called while
// holding the lane's turn.
func (r *Remote) markStale(ref uintptr) {
	lanesMu.Lock()
	defer lanesMu.Unlock()
	for o := range r.lane.remotes {
		if o.ref == ref {
			o.stale = true
		}
	}
}

// IsValid calls CFMessagePortIsValid. A remote invalidated to end a wait (Close of another
// Remote of the name, or a cancelled call) counts as valid: it is made anew at the next call.
func (r *Remote) IsValid() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return false
	}
	lanesMu.Lock()
	defer lanesMu.Unlock()
	return r.stale || isValid(r.ref)
}

// Close releases the remote. A call of this Remote in progress is ended first (abort), so Close
// does not wait for CF's timeout; CF's remote of the name is then invalid, and the other Remotes
// of the name look it up again at their next call. Otherwise it is not invalidated: CF shares one
// object per name in a process, which other Remotes may still use. Safe to call more than once.
func (r *Remote) Close() error {
	r.once.Do(func() { close(r.closing) })
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	lanesMu.Lock()
	delete(r.lane.remotes, r)
	if len(r.lane.remotes) == 0 && lanes[r.lane.key] == r.lane {
		delete(lanes, r.lane.key)
	}
	ref := r.ref
	lanesMu.Unlock()
	closeRemote(ref)
	return nil
}
