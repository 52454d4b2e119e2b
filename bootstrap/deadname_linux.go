//go:build linux

package bootstrap

import (
	"context"

	"github.com/machport/machport/mach"
)

// deadNames receives the dead-name notifications of the send rights the namespace holds to
// other processes' ports (which the libSystem double's bootstrap_register2 may be given: a
// right to this process's own port is watched with emu.WatchReceive instead, see publish), for
// all names, on one port and one goroutine, and withdraws the names of each dead right.
type deadNames struct {
	port   *mach.ReceiveRight
	by     map[mach.Name][]*served // under e.mu
	cancel context.CancelFunc
	done   chan struct{}
}

func newDeadNames(e *emulated) (*deadNames, error) {
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &deadNames{port: port, by: map[mach.Name][]*served{}, cancel: cancel, done: make(chan struct{})}
	go d.run(ctx, e)
	return d, nil
}

// watch adds s, whose right is s.send. The caller holds e.mu. xnu keeps one dead-name request
// per name (ipc_port_request_alloc in osfmk/ipc/ipc_port.c), and rights to one port share a
// name, so the request is made for the first name of a right only.
func (d *deadNames) watch(s *served) error {
	n := s.send.Name()
	if len(d.by[n]) == 0 {
		prev, err := s.send.RequestDeadName(d.port)
		if err != nil {
			return err
		}
		if prev != nil { // the registrant's own request: replaced, as in xnu
			_ = prev.Close()
		}
	}
	d.by[n] = append(d.by[n], s)
	return nil
}

// forget removes s. The caller holds e.mu. The request stays armed while the name lives: what it
// sends later is received and discarded.
func (d *deadNames) forget(s *served) {
	n := s.send.Name()
	list := d.by[n]
	for i, x := range list {
		if x == s {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(d.by, n)
	} else {
		d.by[n] = list
	}
}

// run withdraws the names of each right whose port died, on goroutines of their own (the last
// withdrawal stops the agent, which waits for run), until stop.
func (d *deadNames) run(ctx context.Context, e *emulated) {
	defer close(d.done)
	for {
		var m mach.Message
		if err := mach.Receive(ctx, d.port, &m); err != nil {
			return
		}
		n, err := mach.ParseNotification(&m)
		if err == nil && n.Kind == mach.NotifyDeadName {
			e.mu.Lock()
			gone := append([]*served(nil), d.by[n.Name]...)
			e.mu.Unlock()
			for _, s := range gone {
				go e.withdraw(s)
			}
			_ = n.CloseDeadName() // the notification's reference of the dead name
		}
		_ = m.Destroy()
	}
}

// stop ends run and releases the port with what is queued on it.
func (d *deadNames) stop() {
	d.cancel()
	<-d.done
	mach.Drain(d.port) // a dead-name notification carries a reference of the dead name
	_ = d.port.Close()
}
