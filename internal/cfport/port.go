package cfport

import (
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
type Remote struct {
	name string
	ref  uintptr

	mu     sync.RWMutex
	closed bool
}

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
	return &Remote{name: name, ref: ref}, nil
}

// Name returns the service name.
func (r *Remote) Name() string { return r.name }

// Request sends msgid and data with CFMessagePortSendRequest and waits for the reply; timeout
// bounds both the send and the wait, as CF's sendTimeout and rcvTimeout. nil data sends CF's
// "no data" (byteslen -1). The status is CF's; the reply is nil unless it is Success.
func (r *Remote) Request(msgid int32, data []byte, timeout time.Duration) ([]byte, Status) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return nil, IsInvalid
	}
	return sendRequest(r.ref, msgid, data, seconds(timeout), true)
}

// Send sends msgid and data one way (CFMessagePortSendRequest with no reply mode).
func (r *Remote) Send(msgid int32, data []byte, timeout time.Duration) Status {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		return IsInvalid
	}
	_, status := sendRequest(r.ref, msgid, data, seconds(timeout), false)
	return status
}

// IsValid calls CFMessagePortIsValid.
func (r *Remote) IsValid() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return !r.closed && isValid(r.ref)
}

// Close releases the remote (CF shares one object per name in a process, so it is not
// invalidated). Safe to call more than once; it waits for requests in flight.
func (r *Remote) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	closeRemote(r.ref)
	return nil
}
