package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/peer"
)

// The raw echo protocol: a request is any Mach message with a send-once reply right; the reply
// carries the request's msgh_id and data back, inline when the request was inline and
// out-of-line when it was out-of-line. Clients put payloads above wire.InlineLimit
// out-of-line, as CF does, so that raw and CF measurements compare like with like.

// rawRequest is what the raw server tells its logger about a request.
type rawRequest struct {
	id        int32
	bytes     int
	outOfLine bool
	oneWay    bool
	sender    mach.AuditToken
}

// rawServe answers the requests that arrive on port until the port is closed, which ends it
// with an error. Messages it cannot answer (no reply right) are logged as one-way and destroyed;
// messages a peer wrote that are no message are dropped and told to logDrop, and serving goes
// on: only the port's end stops it. With req set, a message whose sender (its audit trailer)
// fails req is dropped before it is served or logged as a request, and told to logDrop: its
// reply right is destroyed with it, so the client learns it gets no answer, as a CFMessagePort
// server with ServerOptions.Require does. It blocks without a context: a receive that cannot be
// canceled is the fastest one (see internal/emu), and closing the port is how it stops.
func rawServe(port *mach.ReceiveRight, req *peer.Requirement, logRequest func(rawRequest), logDrop func(error)) error {
	ctx := context.Background()
	var in mach.Message
	out := &mach.Message{}
	var backoff time.Duration
	for {
		if err := mach.Receive(ctx, port, &in); err != nil {
			switch {
			case mach.PortGone(err):
				return err
			case mach.MessageDropped(err):
				backoff = 0
			default: // a passing failure (a resource shortage): do not spin on it
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
			}
			logDrop(err)
			continue
		}
		backoff = 0
		if req != nil {
			if err := req.Check(in.Trailer.Audit); err != nil {
				logDrop(fmt.Errorf("the sender (pid %d) fails the server's requirement: %w", in.Trailer.Audit.PID(), err))
				_ = in.Destroy()
				continue
			}
		}
		rr := rawRequest{id: in.ID, bytes: len(in.Body), sender: in.Trailer.Audit}
		*out = mach.Message{ID: in.ID}
		if len(in.Descriptors) == 1 {
			if _, ok := in.Descriptors[0].(*mach.OOLDescriptor); ok {
				// Hand the received memory back without copying it.
				if region, err := in.TakeRegion(0); err == nil {
					rr.bytes, rr.outOfLine = region.Len(), true
					out.Descriptors = []mach.Descriptor{&mach.OOLDescriptor{Region: region, Deallocate: true, Copy: mach.VirtualCopy}}
				}
			}
		}
		if !rr.outOfLine {
			out.Body = in.Body
		}
		right := in.TakeRemote()
		reply, _ := right.(*mach.SendOnceRight)
		if reply == nil && right != nil {
			_ = right.Close() // a send right to answer on: only send-once rights are answered
		}
		rr.oneWay = reply == nil
		if logRequest != nil {
			logRequest(rr)
		}
		if reply != nil {
			out.Remote = mach.MoveSendOnceOf(reply)
			if err := mach.Send(ctx, out); err != nil {
				// The requester is gone or its queue is full: drop the reply, keep serving.
				reply.Close()
				for _, d := range out.Descriptors {
					if ool, ok := d.(*mach.OOLDescriptor); ok && ool.Region != nil {
						ool.Region.Close()
					}
				}
			}
		} else {
			for _, d := range out.Descriptors {
				d.(*mach.OOLDescriptor).Region.Close()
			}
		}
		_ = in.Destroy()
	}
}

// dropLog reports the messages a server dropped on stderr, at most once a second, with how many
// were dropped since the last line: a peer flooding the server must not flood the terminal.
type dropLog struct {
	o       *output
	mu      sync.Mutex
	last    time.Time
	dropped int
	total   uint64 // every message dropped, for serve's "withdrawn" count
}

// count is the number of messages dropped so far.
func (d *dropLog) count() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total
}

func (d *dropLog) drop(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropped++
	d.total++
	if time.Since(d.last) < time.Second {
		return
	}
	d.last = time.Now()
	d.o.progress("machping: dropped %d message(s) since the last report; the latest: %v\n", d.dropped, err)
	d.dropped = 0
}

// rawClient makes raw echo requests to a service, one at a time.
type rawClient struct {
	service *mach.SendRight
	reply   *mach.ReceiveRight
	in      mach.Message
}

// newRawClient takes ownership of service. The service's death is announced on the reply port
// itself (a dead-name notification), so that a request waiting for its reply learns of it.
func newRawClient(service *mach.SendRight) (*rawClient, error) {
	reply, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		service.Close()
		return nil, err
	}
	previous, err := mach.RequestNotification(service.Name(), mach.NotifyDeadName, 1, reply)
	if err != nil {
		reply.Close()
		service.Close()
		return nil, err
	}
	if previous != nil {
		previous.Close()
	}
	return &rawClient{service: service, reply: reply}, nil
}

// request sends data with msgh_id id and returns the echoed data, valid until the next request.
func (c *rawClient) request(ctx context.Context, id int32, data []byte) ([]byte, error) {
	_ = c.in.Destroy()
	out := &mach.Message{Remote: mach.CopySendOf(c.service), Local: mach.MakeSendOnceOf(c.reply), ID: id}
	if wire.Inline(len(data)) {
		out.Body = data
	} else {
		out.Descriptors = []mach.Descriptor{&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy}}
	}
	if err := mach.Send(ctx, out); err != nil {
		if c.serviceDead() {
			return nil, errServerDied
		}
		return nil, err
	}
	for {
		if err := mach.Receive(ctx, c.reply, &c.in); err != nil {
			return nil, err
		}
		// msgh_ids 64 to 72 are the kernel's notifications when the kernel sent them; from the
		// server (a seq in that range) they are replies.
		if mach.IsNotificationID(c.in.ID) {
			if n, err := mach.ParseNotification(&c.in); err == nil {
				switch n.Kind {
				case mach.NotifyDeadName:
					_ = n.CloseDeadName()
					return nil, errServerDied
				case mach.NotifySendOnce:
					// Our reply right was destroyed unanswered: the server dropped the request,
					// or died holding it (the dead-name notification may follow).
					if c.serviceDead() {
						return nil, errServerDied
					}
					return nil, errors.New("the server dropped the request without answering")
				}
				_ = c.in.Destroy()
				continue
			}
		}
		if c.in.ID != id {
			_ = c.in.Destroy() // a late reply to a request that timed out
			continue
		}
		if len(c.in.Descriptors) == 1 {
			if ool, ok := c.in.Descriptors[0].(*mach.OOLDescriptor); ok {
				return ool.Data, nil
			}
		}
		if len(c.in.Descriptors) != 0 {
			return nil, fmt.Errorf("reply with %d descriptors", len(c.in.Descriptors))
		}
		// The body comes back padded to 4 bytes; the request's length says how much is data.
		if len(c.in.Body) < len(data) {
			return c.in.Body, nil
		}
		return c.in.Body[:len(data)], nil
	}
}

func (c *rawClient) serviceDead() bool {
	t, err := mach.TypeOf(c.service.Name())
	return err == nil && t.Has(mach.TypeDeadName)
}

// close releases the service right, then the reply port with whatever is queued on it.
func (c *rawClient) close() {
	_ = c.in.Destroy()
	c.service.Close()
	c.reply.Close()
}
