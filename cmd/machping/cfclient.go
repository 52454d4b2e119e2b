package main

import (
	"context"
	"errors"

	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
)

// cfClient makes CFMessagePort requests to a service, one at a time, with the library's public
// codec (Packet.Encode lays a request out as CF does, Decode checks a reply with CF's rules), so
// that ping sees each reply's audit trailer, which cfmessageport.Remote does not expose: it is
// how a ping line names the replying server's pid and uid. Requests carry a send-once reply right
// made from one reply port, as CF's do (__CFMessagePortSendRequest); the service's death comes
// there too, as a dead-name notification, so that a request waiting for its reply learns of it.
type cfClient struct {
	service *mach.SendRight
	reply   *mach.ReceiveRight
	conv    int32 // the last conversation id
	in, out mach.Message
}

// newCFClient takes ownership of service.
func newCFClient(service *mach.SendRight) (*cfClient, error) {
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
	return &cfClient{service: service, reply: reply}, nil
}

// request sends data with msgid and returns the reply's data, valid until the next request, and
// the audit token of the process that sent the reply.
func (c *cfClient) request(ctx context.Context, msgid int32, data []byte) ([]byte, mach.AuditToken, error) {
	_ = c.in.Destroy()
	c.conv = c.conv%(1<<31-1) + 1 // positive in a request; the reply carries it negated
	p := wire.Packet{MsgID: msgid, ConvID: c.conv, Data: data}
	if err := p.Encode(&c.out, mach.CopySendOf(c.service), mach.MakeSendOnceOf(c.reply)); err != nil {
		return nil, mach.AuditToken{}, err
	}
	if err := mach.Send(ctx, &c.out); err != nil {
		if c.serviceDead() {
			return nil, mach.AuditToken{}, errServerDied
		}
		return nil, mach.AuditToken{}, err
	}
	for {
		if err := mach.Receive(ctx, c.reply, &c.in); err != nil {
			return nil, mach.AuditToken{}, err
		}
		if mach.IsNotificationID(c.in.ID) && c.in.Trailer.Audit.IsKernel() {
			if n, err := mach.ParseNotification(&c.in); err == nil {
				switch n.Kind {
				case mach.NotifyDeadName:
					_ = n.CloseDeadName()
					return nil, mach.AuditToken{}, errServerDied
				case mach.NotifySendOnce:
					// The reply right was destroyed unanswered: a server that is no CF service
					// dropped the request, or the server died holding it.
					if c.serviceDead() {
						return nil, mach.AuditToken{}, errServerDied
					}
					return nil, mach.AuditToken{}, errors.New("the server dropped the request without answering")
				}
				_ = c.in.Destroy()
				continue
			}
		}
		reply, err := wire.Decode(&c.in, true)
		if err != nil || reply.ConvID != -c.conv {
			_ = c.in.Destroy() // corrupt, as CF drops it, or a late reply to a request that timed out
			continue
		}
		return reply.Data, c.in.Trailer.Audit, nil
	}
}

func (c *cfClient) serviceDead() bool {
	t, err := mach.TypeOf(c.service.Name())
	return err == nil && t.Has(mach.TypeDeadName)
}

// close releases the service right, then the reply port with whatever is queued on it.
func (c *cfClient) close() {
	_ = c.in.Destroy()
	c.service.Close()
	c.reply.Close()
}
