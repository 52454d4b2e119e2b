//go:build linux

package emu

import (
	"github.com/machport/machport/internal/abi"
	"golang.org/x/sys/unix"
)

// Channel setup outside the space lock.
//
// Making a channel costs system calls (socketpair, SO_PASSCRED, epoll_ctl, the monitor's dup and
// epoll_ctl). None of them runs under sp.mu, so that the process's other threads keep sending and
// receiving meanwhile. An operation that finds, under sp.mu, that it needs a channel records the
// need (need: the port's fds are opened and the port is pinned, so that its epoll fd stays open),
// and carries on to find every other need of the same pass; it then undoes the pass, drops the
// lock, makes the channels (prepare), takes the lock again and starts over. The second pass finds
// its channels ready (take) and installs them in their ports, under the lock but without a
// system call; a channel that is not taken after all is discarded.

// setupKind is what a channel is made for.
type setupKind uint8

const (
	setupSend     setupKind = iota // a send right carried to another process (exportTo)
	setupSendOnce                  // one send-once right
	setupLane                      // a lane (lane.go)
	setupPair                      // a bare socketpair: a lane right moving on to another process
	setupSendLane                  // a send lane's data and control channels (sendlane.go)
)

// chanSetup is one channel made, or to be made, outside sp.mu.
type chanSetup struct {
	kind     setupKind
	p        *port  // nil for setupPair
	dest     portID // a lane's destination
	epfd     int    // p's epoll fd, kept open by the pin
	r, w     int
	cr, cw   int // a send lane's control channel
	rc       *rchan
	capacity int // a lane's
}

// setups is what one operation needs and has made.
type setups struct {
	needs []chanSetup  // recorded under sp.mu; their ports are pinned
	ready []*chanSetup // made, not yet taken
}

// channelSetupHook, when set (by tests), runs at the start of every channel setup, to check that
// sp.mu is not held there.
var channelSetupHook func()

func setupStarts() {
	if h := channelSetupHook; h != nil {
		h()
	}
}

// need records that the operation needs a channel of kind into p (to dest, for a lane). p's
// epoll fd (and, for a send right, its queue counter) are made now, once per port. Called with
// sp.mu held; MACH_SEND_NO_BUFFER when the port's fds cannot be made.
func (ss *setups) need(kind setupKind, p *port, dest portID) int32 {
	cs := chanSetup{kind: kind, p: p, dest: dest, epfd: -1, r: -1, w: -1, cr: -1, cw: -1}
	if p != nil {
		if p.openFDs() != nil {
			return abi.MACH_SEND_NO_BUFFER
		}
		if kind == setupSend || kind == setupSendLane {
			if _, err := p.counter(); err != nil {
				return abi.MACH_SEND_NO_BUFFER
			}
		}
		p.pin()
		cs.epfd = p.epfd
	}
	ss.needs = append(ss.needs, cs)
	return abi.MACH_MSG_SUCCESS
}

// pending reports whether needs were recorded.
func (ss *setups) pending() bool { return len(ss.needs) > 0 }

// prepare makes the channels needed. Called without sp.mu; end must follow, with it.
func (ss *setups) prepare() error {
	var first error
	for i := range ss.needs {
		cs := new(chanSetup)
		*cs = ss.needs[i]
		if err := cs.make(); err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		ss.ready = append(ss.ready, cs)
	}
	return first
}

// unpin ends the pins of the needs. Called with sp.mu held.
func (ss *setups) unpin() {
	for i := range ss.needs {
		if p := ss.needs[i].p; p != nil {
			p.unpin()
		}
	}
	clear(ss.needs)
	ss.needs = ss.needs[:0]
}

// take returns a channel made for kind into p (to dest), or nil. Called with sp.mu held.
func (ss *setups) take(kind setupKind, p *port, dest portID) *chanSetup {
	for i, cs := range ss.ready {
		if cs.kind == kind && cs.p == p && cs.dest == dest {
			ss.ready = append(ss.ready[:i], ss.ready[i+1:]...)
			return cs
		}
	}
	return nil
}

// discard closes the channels made and not taken. Called with or without sp.mu.
func (ss *setups) discard() {
	for _, cs := range ss.ready {
		cs.close()
	}
	clear(ss.ready)
	ss.ready = ss.ready[:0]
}

// make creates the channel: a SOCK_SEQPACKET socketpair whose read end passes credentials and,
// but for a bare pair, waits in the port's epoll; a send right's read end is also watched for
// its writers' hang-up. Called without sp.mu.
func (cs *chanSetup) make() error {
	setupStarts()
	// Blocking sockets: the emulation reads and writes with MSG_DONTWAIT and waits in epoll or
	// poll, except for receiveDirect, which blocks in recvmsg.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	cs.r, cs.w = fds[0], fds[1]
	if err := unix.SetsockoptInt(cs.r, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		cs.close()
		return err
	}
	if cs.kind == setupPair {
		return nil
	}
	if cs.kind == setupSendLane {
		ctl, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			cs.close()
			return err
		}
		cs.cr, cs.cw = ctl[0], ctl[1]
	}
	if cs.kind == setupLane {
		unix.SetsockoptInt(cs.w, unix.SOL_SOCKET, unix.SO_SNDBUF, laneSndBuf)
		sndbuf, _ := unix.GetsockoptInt(cs.w, unix.SOL_SOCKET, unix.SO_SNDBUF)
		// One datagram per token, one hello, and room to spare.
		cs.capacity = min(max(sndbuf/laneDatagramCost-2, 1), 64)
	}
	if err := unix.EpollCtl(cs.epfd, unix.EPOLL_CTL_ADD, cs.r, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(cs.r)}); err != nil {
		cs.close()
		return err
	}
	rc := &rchan{fd: cs.r, sendOnce: cs.kind != setupSend && cs.kind != setupSendLane, p: cs.p}
	cs.rc = rc
	if cs.kind == setupSend {
		// Senders leaving must be noticed even while nobody reads the port (no-senders goes to
		// another port). A send-once channel needs no watch: its hang-up makes it readable, and
		// the receiver of this port turns an unused one into MACH_NOTIFY_SEND_ONCE. (The watch
		// cannot fire before the channel is installed: the write end is open until then.)
		if rc.monitor = monitorAdd(cs.r, unix.EPOLLRDHUP, func() { sp.hungUp(rc) }); rc.monitor == 0 {
			// The monitor could not watch it (its dup fails at the fd limit): a hang-up never
			// seen would keep the port's senders for good, so the channel is not made, as when
			// its socketpair cannot be. (An adopted channel, whose right exists already, asks
			// again later instead: watchHangUp.)
			cs.close()
			return unix.EMFILE
		}
	}
	return nil
}

func (cs *chanSetup) close() {
	if cs.rc != nil {
		monitorRemove(cs.rc.monitor)
		cs.rc = nil
	}
	if cs.r >= 0 {
		unix.Close(cs.r)
	}
	for _, fd := range [...]int{cs.w, cs.cr, cs.cw} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	cs.r, cs.w, cs.cr, cs.cw = -1, -1, -1, -1
}

// installChan makes a channel of kind setupSend or setupSendOnce one of its port's, and returns
// its sending side (with one holder). The port is alive. Called with sp.mu held.
func (cs *chanSetup) installChan() *sendChan {
	p, rc := cs.p, cs.rc
	p.chans[rc.fd] = rc
	p.wakeDirect() // a receiver blocked on the other channel must watch this one too
	c := &sendChan{fd: cs.w, id: p.id, sendOnce: rc.sendOnce, refs: 1, rc: rc}
	if !rc.sendOnce {
		rc.counted = true
		p.senders++
		c.ctr, c.ownsCtr = p.ctr.ref(), true // the counter outlives the port while a channel uses it
	}
	return c
}

// withChannel runs f under sp.mu with a channel into the port that ready returns, made outside
// the lock: f is called with nil when no port needs one (ready returned nil), else with the
// channel's sending side; ready runs again after the channel is made, since anything may have
// changed meanwhile. It is for the calls outside a send that make a send-once right
// (ExtractRight, a timed-out send handed back). sp.mu is held on entry and on return.
func withChannel(kind setupKind, ready func() *port, f func(*sendChan) int32) int32 {
	var ss setups
	defer ss.discard()
	for {
		p := ready()
		if p == nil {
			return f(nil)
		}
		if cs := ss.take(kind, p, portID{}); cs != nil {
			return f(cs.installChan())
		}
		if kr := ss.need(kind, p, portID{}); kr != abi.MACH_MSG_SUCCESS {
			return abi.KERN_RESOURCE_SHORTAGE
		}
		sp.mu.Unlock()
		err := ss.prepare()
		sp.mu.Lock()
		ss.unpin()
		if err != nil {
			return abi.KERN_RESOURCE_SHORTAGE
		}
	}
}
