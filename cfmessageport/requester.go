package cfmessageport

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machport/machport/mach"
)

// requestContext is the context a handler gets for a request that expects a reply: canceled by
// Close (with cause ErrServerClosed), and when the requester is gone (with cause
// ErrRequesterGone), as net/http cancels a request's context when its client goes away.
//
// Watching the requester costs a dead-name request on its reply right, so it is armed only when
// the handler first asks whether the context is done (Done or Err, which anything waiting on the
// context calls); a handler that never looks costs nothing more.
type requestContext struct {
	s     *Server
	reply *mach.SendOnceRight

	once    sync.Once
	inner   atomic.Pointer[context.Context] // the cancelable context, once armed
	watched mach.Name                       // the reply right's name while watched; set in once
}

func (c *requestContext) Deadline() (time.Time, bool) { return c.s.baseCtx.Deadline() }

func (c *requestContext) Done() <-chan struct{} { return c.arm().Done() }

func (c *requestContext) Err() error { return c.arm().Err() }

// Value does not arm the watch; before it, the server's context answers (context.Cause included:
// nothing but Close can have canceled the request).
func (c *requestContext) Value(key any) any {
	if inner := c.inner.Load(); inner != nil {
		return (*inner).Value(key)
	}
	return c.s.baseCtx.Value(key)
}

func (c *requestContext) String() string { return "cfmessageport.requestContext" }

// arm makes the cancelable context and watches the reply right, once; after finish it only
// returns the server's context.
func (c *requestContext) arm() context.Context {
	c.once.Do(func() {
		ctx, cancel := context.WithCancelCause(c.s.baseCtx)
		c.inner.Store(&ctx)
		c.watched = c.s.requesters.watch(c.reply, cancel)
	})
	if inner := c.inner.Load(); inner != nil {
		return *inner
	}
	return c.s.baseCtx
}

// finish stops watching, before the reply right is sent or released (which frees its name for
// reuse). A handler that keeps its context and asks later gets
// the server's context.
func (c *requestContext) finish() {
	c.once.Do(func() {})
	if c.watched.Valid() {
		c.s.requesters.unwatch(c.watched)
	}
}

// requesterWatch receives the dead-name notifications of the reply rights handlers wait on, on a
// port of its own (a server serving one request at a time cannot receive them on its port while
// the handler runs), with a goroutine started at the first watch.
type requesterWatch struct {
	mu      sync.Mutex
	port    *mach.ReceiveRight // nil until the first watch, and after stop
	cancels map[mach.Name]context.CancelCauseFunc
	stopper stopper
	done    chan struct{}
	failed  bool // the port could not be made: no requester is watched
}

// watch asks for a dead-name notification on reply and returns its name, or NameNull when it
// cannot be watched (the context is then canceled only by Close).
func (w *requesterWatch) watch(reply *mach.SendOnceRight, cancel context.CancelCauseFunc) mach.Name {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.port == nil {
		if w.failed || !w.start() {
			return mach.NameNull
		}
	}
	name := reply.Name()
	// sync 1: a requester already gone is notified at once.
	prev, err := mach.RequestNotification(name, mach.NotifyDeadName, 1, w.port)
	if err != nil {
		return mach.NameNull
	}
	if prev != nil {
		_ = prev.Close()
	}
	w.cancels[name] = cancel
	return name
}

// unwatch cancels the dead-name request, so that the right can be moved or released without a
// notification racing it (one already queued still releases its reference in receive).
func (w *requesterWatch) unwatch(name mach.Name) {
	w.mu.Lock()
	delete(w.cancels, name)
	w.mu.Unlock()
	if prev, err := mach.RequestNotification(name, mach.NotifyDeadName, 0, nil); err == nil && prev != nil {
		_ = prev.Close() // a send-once notification to the watch port, which destroys it
	}
}

// start makes the notification port and its goroutine; w.mu is held.
func (w *requesterWatch) start() bool {
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		w.failed = true
		return false
	}
	w.port, w.cancels, w.stopper, w.done = port, map[mach.Name]context.CancelCauseFunc{}, newStopper(), make(chan struct{})
	go w.receive(port)
	return true
}

func (w *requesterWatch) receive(port *mach.ReceiveRight) {
	defer close(w.done)
	var m mach.Message
	for {
		if err := mach.Receive(context.Background(), port, &m); err != nil {
			if mach.PortGone(err) {
				return
			}
			continue // only the kernel sends here; nothing else can fail for long
		}
		if w.stopper.is(&m) {
			_ = m.Destroy()
			return
		}
		if n, err := mach.ParseNotification(&m); err == nil && n.Kind == mach.NotifyDeadName {
			w.mu.Lock()
			if cancel := w.cancels[n.Name]; cancel != nil {
				cancel(ErrRequesterGone)
			}
			w.mu.Unlock()
			// Its reference keeps the name from reuse until the request is done with it.
			_ = n.CloseDeadName()
		}
		_ = m.Destroy() // port-deleted: a watched right was replied on or released
	}
}

// stop ends the goroutine and destroys the port, once no handler runs.
func (w *requesterWatch) stop() {
	w.mu.Lock()
	port, done := w.port, w.done
	w.port = nil
	w.failed = true // no watch after this
	w.mu.Unlock()
	if port == nil {
		return
	}
	if w.stopper.send(port) != nil {
		mach.Drain(port) // notifications queued carry references of dead names
		_ = port.Close() // ends the loop
		<-done
		return
	}
	<-done
	mach.Drain(port)
	_ = port.Close()
}
