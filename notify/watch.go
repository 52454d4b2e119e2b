package notify

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machport/machport/mach"
)

// Delivery is one delivery to a Subscription: name was posted at least once since the previous
// delivery (see the package doc on coalescing).
type Delivery struct {
	Name  string
	Token int32
	Time  time.Time // when this process received it
}

// Subscription is a Watch: a Registration whose deliveries arrive on C. Every subscription of
// the process shares one Mach port, received by one goroutine, which hands each message to the
// subscription whose token is its msgh_id.
type Subscription struct {
	*Registration
	c         chan Delivery
	coalesced atomic.Uint64
	stopAfter func() bool // stops the context's AfterFunc

	once sync.Once
	err  error
}

// C returns the deliveries. It holds at most one: a delivery made while one is waiting is merged
// into it (Coalesced counts those). It is closed by Cancel.
func (s *Subscription) C() <-chan Delivery { return s.c }

// Coalesced returns how many deliveries this process merged into one already waiting on C. Posts
// that notifyd itself dropped because the port's queue was full are not counted: a message
// already queued stands for them.
func (s *Subscription) Coalesced() uint64 { return s.coalesced.Load() }

// hub is the process's shared port and the goroutine receiving from it. It exists while a
// subscription does.
var hub struct {
	mu   sync.Mutex
	port *Port
	subs map[int32]*Subscription
	stop context.CancelFunc
	done chan struct{}
}

// Watch registers name and delivers its posts on the subscription's C until ctx ends or Cancel
// is called (either cancels the registration and closes C).
func Watch(ctx context.Context, name string) (*Subscription, error) {
	const op = "notify_register_mach_port"
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: op, Name: name, Err: err}
	}
	hub.mu.Lock()
	defer hub.mu.Unlock()
	reg, err := RegisterPort(name, hub.port) // nil: the first subscription makes the port
	if err != nil {
		return nil, err
	}
	s := &Subscription{Registration: reg, c: make(chan Delivery, 1)}
	if hub.port == nil {
		rctx, stop := context.WithCancel(context.Background())
		hub.port, hub.subs, hub.stop, hub.done = reg.port, map[int32]*Subscription{}, stop, make(chan struct{})
		go dispatch(rctx, reg.port, hub.done)
	}
	hub.subs[reg.token] = s
	s.stopAfter = context.AfterFunc(ctx, func() { _ = s.Cancel() })
	return s, nil
}

// Cancel ends the subscription: the registration is cancelled and C closed. Safe to call twice.
func (s *Subscription) Cancel() error {
	s.once.Do(func() {
		hub.mu.Lock()
		// stopAfter is set under hub.mu by Watch, which may still hold it when a context that
		// is already done runs this from AfterFunc.
		if s.stopAfter != nil {
			s.stopAfter()
		}
		delete(hub.subs, s.token) // under hub.mu, which dispatch holds to look it up and send
		last := len(hub.subs) == 0
		stop, done := hub.stop, hub.done
		if last {
			hub.port, hub.subs, hub.stop, hub.done = nil, nil, nil, nil
		}
		hub.mu.Unlock()
		if last {
			// The receiver goes before the last registration, whose cancel destroys the port.
			stop()
			<-done
		}
		s.err = s.Registration.Cancel()
		close(s.c) // last: a closed C means the registration is gone
	})
	return s.err
}

// dispatch receives the shared port's messages and hands each to its subscription. It ends when
// ctx is cancelled (the last subscription went) or the port is gone.
func dispatch(ctx context.Context, p *Port, done chan struct{}) {
	defer close(done)
	var m mach.Message
	for {
		if err := mach.Receive(ctx, p.right, &m); err != nil {
			return // cancelled, or the port is gone: nothing more can arrive
		}
		tok, ok := ParseMessage(&m)
		_ = m.Destroy()
		if !ok {
			continue
		}
		now := time.Now()
		hub.mu.Lock()
		if s := hub.subs[tok]; s != nil {
			select {
			case s.c <- Delivery{Name: s.name, Token: tok, Time: now}:
			default:
				s.coalesced.Add(1)
			}
		}
		hub.mu.Unlock()
	}
}
