package cfmessageport

import (
	"context"
	"sync"

	"github.com/machport/machport/mach"
)

// deathWatch is the one dead-name request a process holds on a service, shared by every Remote
// of it. A task holds all its send rights to one port under one name, and Mach keeps one
// dead-name request per name (a second replaces the first), so each Remote asking on its own
// would leave all but the newest deaf to the service's death. CF shares one remote per name for
// the same reason (CFMessagePortCreateRemote returns the existing one); here Remotes stay
// independent and share the watch instead.
//
// Its notification port is received on by a goroutine that is idle otherwise, so that the death
// is noticed with no request in flight too.
type deathWatch struct {
	name    mach.Name
	notify  *mach.ReceiveRight
	subs    map[*Remote]struct{} // guarded by deathWatches.mu
	fired   bool                 // the service died; guarded by deathWatches.mu
	stopper stopper
	done    chan struct{} // closed when the goroutine has stopped
}

// deathWatches holds the watches by the name of the service's send right in this task.
var deathWatches struct {
	mu     sync.Mutex
	byName map[mach.Name]*deathWatch
}

// watchDeath subscribes r to the death of service, making the watch if r is its first Remote.
// A service already known dead fails with errServerGone.
func watchDeath(service *mach.SendRight, r *Remote) (*deathWatch, error) {
	deathWatches.mu.Lock()
	defer deathWatches.mu.Unlock()
	name := service.Name()
	if w := deathWatches.byName[name]; w != nil {
		if w.fired {
			return nil, errServerGone
		}
		w.subs[r] = struct{}{}
		return w, nil
	}
	notify, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return nil, err
	}
	prev, err := service.RequestDeadName(notify)
	if err != nil {
		notify.Close()
		if isDead(service) { // it died since: today's xnu refuses the request (KERN_INVALID_ARGUMENT)
			err = errServerGone
		}
		return nil, err
	}
	if prev != nil {
		prev.Close() // another request on the name, made outside this package, is replaced
	}
	w := &deathWatch{name: name, notify: notify, subs: map[*Remote]struct{}{r: {}}, stopper: newStopper(),
		done: make(chan struct{})}
	if deathWatches.byName == nil {
		deathWatches.byName = map[mach.Name]*deathWatch{}
	}
	deathWatches.byName[name] = w
	go w.receive()
	return w, nil
}

// receive waits for the service's death and invalidates every Remote of it, until stop.
func (w *deathWatch) receive() {
	defer close(w.done)
	var m mach.Message
	for {
		if err := mach.Receive(context.Background(), w.notify, &m); err != nil {
			if mach.MessageDropped(err) {
				continue
			}
			w.died(false) // the port is gone: nothing would tell of the death any more
			return
		}
		if w.stopper.is(&m) {
			_ = m.Destroy()
			return
		}
		if n, err := mach.ParseNotification(&m); err == nil && n.Kind == mach.NotifyDeadName {
			if n.Name == w.name {
				w.died(true)
			}
			_ = n.CloseDeadName() // the reference the notification carries
		}
		_ = m.Destroy()
	}
}

// died invalidates every Remote subscribed.
func (w *deathWatch) died(serviceDied bool) {
	deathWatches.mu.Lock()
	w.fired = true
	subs := make([]*Remote, 0, len(w.subs))
	for r := range w.subs {
		subs = append(subs, r)
	}
	deathWatches.mu.Unlock()
	for _, r := range subs {
		r.invalidate(serviceDied)
	}
}

// unsubscribe takes r off the watch. The last Remote ends it: the dead-name request is canceled
// before the caller releases its send right (which may free the name for another port), the
// goroutine stops, and the notifications still queued are released.
func (w *deathWatch) unsubscribe(r *Remote) {
	deathWatches.mu.Lock()
	delete(w.subs, r)
	last := len(w.subs) == 0
	if last && deathWatches.byName[w.name] == w {
		delete(deathWatches.byName, w.name)
	}
	deathWatches.mu.Unlock()
	if !last {
		return
	}
	if prev, err := mach.RequestNotification(w.name, mach.NotifyDeadName, 0, nil); err == nil && prev != nil {
		_ = prev.Close() // a send-once notification to the watch port, drained below
	}
	if err := w.stopper.send(w.notify); err == nil {
		<-w.done
	}
	mach.Drain(w.notify) // a dead-name notification carries a reference of the dead name
	_ = w.notify.Close()
	if w.stopper.send(w.notify) != nil {
		<-w.done // if the stop message failed, the port's end stopped the goroutine
	}
}
