//go:build linux

package emu

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/machport/machport/internal/abi"
	"golang.org/x/sys/unix"
)

// Send lanes carry send rights as tokens, so that a request that carries a send right to a port
// of its own process (a reply port made with MAKE_SEND, say) passes no descriptor once the
// peer has a lane into that port.
//
// A send lane is a pair of persistent channels into a port P, held by the process that
// receives on one destination port D: a data channel (its read end joins P's epoll as every
// channel; its write end is what the peer's rights to P send on) and a control channel (its read
// end is watched by the monitor, not read by P's receivers). It is made the second time this
// process carries a send right to P in a message to D (a right carried once, to register a
// port, say, costs what it always did); its write ends and P's queue counter travel with that
// message, the peer keeps them (sendLaneCacheMax) and says hello on the control channel, after
// which a send right to P carried to D is a record naming the lane: a token, without
// descriptors. The peer keeps the lane until P or D dies (tokens come only in messages to D).
//
// Send rights are counted, not named (unlike send-once tokens): P counts the tokens it issued
// on the lane and not yet given back as senders of P, so that no-senders cannot come while one
// is in flight or held (xnu's ipc_port_make_send and ipc_port_copy_send count every send
// right, ip_srights, in flight or named; ipc_port_release_send sends ipc_notify_no_senders only
// when the count is back to 0). The peer keeps the lane's write ends for as long as P and D live
// (not for as long as it names P): a token in flight when it drops its own right still finds
// the lane, and becomes a live right (TestSendRightCarriedWhileReceiverDropsItsOwn's shape). It gives the tokens back with one
// "return n" per send right object (sendChan) it made of them, when that right goes (the name's
// last reference released, its port dead, the process exiting), not one per token: an
// acknowledgement per request would cost what the token saves. A message destroyed unreceived
// gives its token back at once; when the peer exits, its control channel hangs up and every
// token outstanding on the lane is given back with it (as xnu's task teardown releases every
// send right of the space and of the messages queued to its ports).
//
// A returned count reaches P's process on the control channel, while the messages the peer
// sent through those rights come on the data channel: a message still queued holds its send
// right (xnu's ipc_kmsg holds the destination's send right until ipc_kmsg_copyout_header
// releases it), so the lane stops counting as a sender only once the count is 0 and nothing is
// queued on the data channel (settleSendLane, and the receiver after each message).
//
// A right on a lane that moves on to a third process is adopted first: the peer makes a channel
// of its own for it, passes its read end to P's process on the lane's data channel ("adopt"),
// before the message that carries the right goes, and the third process gets its write end and
// P's counter, as it would get any send right. The lane counts as a sender while the adopt is
// queued on it (as while any message is), so the peer's return that follows on the control
// channel cannot make P's senders drop to 0 before the new channel is P's, and nothing is left
// to send after the message went (the peer may exit at once).

// Control datagrams of a send lane (laneCtl's format; the token field is the count of a return).
const (
	sendLaneHello  = 11 // the peer keeps the lane: tokens alone name rights on it from now on
	sendLaneReturn = 12 // the peer gives back n tokens
	sendLaneAdopt  = 13 // (on the data channel) a send right leaves the lane for the channel whose read end comes with this
	sendLaneNoKeep = 14 // the peer does not keep the lane (its cache is full): no token goes on it
)

// sendLaneCacheMax is how many send lanes a process keeps (each costs it four fds: the two write
// ends, the counter and the monitor's dup). Past it, a lane's first right is used and the lane
// closes with it, which tells the port's process to carry rights to that destination as
// descriptors. A variable for tests.
var sendLaneCacheMax = 256

// sendLane is a send lane's side in the port's process.
type sendLane struct {
	key  uint64
	dest portID
	p    *port
	// rc is the data channel's read end; nil until the lane is made (the first carry to dest
	// only notes dest).
	rc *rchan
	// ctl is the control channel's read end (-1 once the lane is gone), watched by ctlMon.
	ctl    int
	ctlMon uint64
	// w and cw are the write ends until the first message on the lane takes them: this process
	// keeps no copy, so that the lane hangs up when its holder is gone.
	w, cw int
	hello bool
	// outstanding counts the tokens issued and not given back; while it is not 0, or messages
	// are queued on the data channel, the data channel counts as a sender of p (rc.counted).
	outstanding int
	// gone: the control channel hung up (the peer exited, or did not keep the lane); noKeep:
	// the peer said it does not keep the lane. No token goes on it any more: rights to p go to
	// dest as descriptors.
	gone, noKeep bool
}

// sendToken copies in a send right to p, a port of this process, as a token on the send lane
// for (p, the message's destination), when there is one the peer keeps; ok is false when the
// right must travel as a channel (the first carry to that destination, a lane the peer did not
// keep, one whose write ends are given and whose hello has not come). Called with sp.mu held.
func (tx *transfer) sendToken(r record, p *port) (_ record, kr int32, ok bool) {
	dest := tx.dest.id
	l := p.sendLanes[dest]
	made := false // the lane was made in this pass, its fd reserved
	switch {
	case l == nil:
		// Noted once the message went (a copy-in pass that is undone notes nothing).
		tx.moves = append(tx.moves, func() { p.noteSendDest(dest) })
		return r, abi.MACH_MSG_SUCCESS, false
	case l.gone || l.noKeep:
		return r, abi.MACH_MSG_SUCCESS, false
	case (l.rc == nil || l.w >= 0) && tx.spareFDs < 1:
		// The lane's write ends take one fd more than a channel and its counter: a message
		// that carries as many rights as it may (fdsNeeded) carries this one as a channel.
		return r, abi.MACH_MSG_SUCCESS, false
	case l.rc == nil:
		tx.spareFDs-- // reserved in every pass, so that one pass finds every channel to make
		cs := tx.ss.take(setupSendLane, p, dest)
		if cs == nil {
			return r, tx.ss.need(setupSendLane, p, dest), true
		}
		cs.installSendLane(l)
		made = true
	case !l.hello && l.w < 0:
		sp.readSendCtl(l) // its hello may be waiting (and, after it, the lane's end)
		if !l.hello || l.gone || l.noKeep {
			return r, abi.MACH_MSG_SUCCESS, false
		}
	}
	l.outstanding++
	if !l.rc.counted {
		l.rc.counted = true
		p.senders++
	}
	tx.sendIssued = append(tx.sendIssued, l)
	r = record{kind: kindSendLane, typ: typePortSend, fd: -1, counterFD: -1, id: p.id, laneKey: l.key}
	if l.w >= 0 {
		// The lane's first token: its write ends and the port's counter travel with it, and are
		// closed here after the send. A pass undone to be run again gives them back to the
		// lane; a send that fails closes them, and the lane with them (its destination may be
		// gone: nothing of the port is kept for it, as xnu keeps nothing per destination).
		if !made {
			tx.spareFDs--
		}
		w, cw := l.w, l.cw
		l.w, l.cw = -1, -1
		i := tx.addFD(w)
		j := tx.addFD(cw)
		tx.owned[i], tx.owned[j] = true, true
		r.fd, r.counterFD = i, tx.addFD(p.ctr.fd)
		tx.undos = append(tx.undos, func() {
			switch {
			case l.gone || l.w >= 0 || p.chans[l.rc.fd] != l.rc:
			case tx.retrying:
				l.w, l.cw = w, cw
				tx.owned[i], tx.owned[j] = false, false
			default:
				// Nobody ever had its write ends (closed with the transfer's): the lane goes
				// now, with no token outstanding on it (rollback takes this one back).
				delete(p.sendLanes, l.dest)
				l.outstanding = 0
				p.removeChan(l.rc)
			}
		})
	}
	return r, abi.MACH_MSG_SUCCESS, true
}

// sendLaneNotesMax bounds the destinations a port keeps noted without a lane (carried to once,
// or whose peer did not keep the lane): past it, one of them is forgotten (a right to it then
// goes as a channel once more), so that a port carried to ever new destinations (reply ports
// of clients that come and go) keeps nothing for each of them. A variable for tests.
var sendLaneNotesMax = 16

// noteSendDest notes that a send right to p was carried to dest. Called with sp.mu held.
func (p *port) noteSendDest(dest portID) {
	if p.dead || p.sendLanes[dest] != nil {
		return
	}
	if p.sendLanes == nil {
		p.sendLanes = map[portID]*sendLane{}
	}
	notes, found := 0, false
	var other portID
	for d, l := range p.sendLanes {
		if l.rc == nil || l.gone {
			notes++
			if l.rc == nil || p.chans[l.rc.fd] != l.rc { // not a lane still draining
				other, found = d, true
			}
		}
	}
	if notes >= sendLaneNotesMax && found {
		delete(p.sendLanes, other)
	}
	p.sendLanes[dest] = &sendLane{dest: dest, p: p, ctl: -1, w: -1, cw: -1}
}

// installSendLane makes the channels made outside sp.mu (setupSendLane) l's. Called with sp.mu
// held; p is alive.
func (cs *chanSetup) installSendLane(l *sendLane) {
	p, rc := cs.p, cs.rc
	p.chans[rc.fd] = rc
	p.wakeDirect() // a receiver blocked on the other channel must watch this one too
	rc.slane = l
	l.rc, l.w, l.ctl, l.cw = rc, cs.w, cs.cr, cs.cw
	cs.r, cs.w, cs.cr, cs.cw, cs.rc = -1, -1, -1, -1, nil
	l.key = randomToken()
	l.watchCtl()
}

// watchCtl has the monitor read l's control channel when a datagram comes or its peer hangs up.
// Called with sp.mu held.
func (l *sendLane) watchCtl() {
	l.ctlMon = monitorAdd(l.ctl, unix.EPOLLIN|unix.EPOLLRDHUP, func() {
		sp.mu.Lock()
		defer sp.mu.Unlock()
		if l.ctl < 0 {
			return
		}
		if !sp.readSendCtl(l) {
			l.watchCtl()
		}
	})
}

// readSendCtl acts on the control datagrams waiting on l, and reports whether the lane is gone.
// Called with sp.mu held.
func (s *space) readSendCtl(l *sendLane) bool {
	var oobBuf [64]byte // room for a few fds: a datagram with more is refused, and the kernel closes what did not fit
	for l.ctl >= 0 {
		var b [laneCtlSize + 1]byte
		n, oobn, flags, err := recvmsg(l.ctl, b[:], oobBuf[:], unix.MSG_DONTWAIT)
		if err != nil {
			return false // EAGAIN: nothing more now
		}
		var m inMsg // only for its fds
		m.parseControl(oobBuf[:oobn])
		if n == 0 && oobn == 0 && closedPeer(l.ctl) {
			s.sendLaneGone(l)
			return true
		}
		ok := n == laneCtlSize && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) == 0 &&
			binary.LittleEndian.Uint32(b[:]) == laneMagic
		s.sendLaneControl(l, ok, b[:n], m.fds)
	}
	return true
}

// sendLaneControl acts on one control datagram of l (well formed or not); every fd in fds is
// adopted or closed. Called with sp.mu held.
func (s *space) sendLaneControl(l *sendLane, ok bool, b []byte, fds []int) {
	adopted := -1
	defer func() {
		for _, fd := range fds {
			if fd != adopted {
				unix.Close(fd)
			}
		}
	}()
	if !ok {
		return
	}
	le := binary.LittleEndian
	op, n := le.Uint32(b[4:]), le.Uint64(b[8:])
	p := l.p
	switch {
	case op == sendLaneHello && len(fds) == 0:
		l.hello = true
	case op == sendLaneNoKeep && len(fds) == 0:
		l.noKeep = true
	case op == sendLaneReturn && len(fds) == 0:
		// A peer cannot give back more than it was given.
		l.outstanding -= int(min(n, uint64(l.outstanding)))
		s.settleSendLane(l)
	case op == sendLaneAdopt && len(fds) == 1 && isSeqpacket(fds[0]) && !p.dead && p.openFDs() == nil:
		// (It comes on the data channel: sendLaneAdoptOnData.)
		if s.adoptSend(p, fds[0]) {
			adopted = fds[0]
		}
	}
}

// sendLaneAdoptOnData acts on a control datagram read from l's data channel: only an adopt
// comes there. Called with sp.mu held.
func (s *space) sendLaneAdoptOnData(l *sendLane, b []byte, fds []int) {
	ok := binary.LittleEndian.Uint32(b[4:]) == sendLaneAdopt
	s.sendLaneControl(l, ok, b, fds)
	s.settleSendLane(l) // it held the lane as a sender while it was queued
}

// adoptSend makes r (the read end that came in an adopt datagram, SO_PASSCRED set by the
// holder that made it) a send-right channel of p at once, under sp.mu: unlike the channels
// setup.go makes, it is taken in synchronously (an epoll_ctl, and the monitor's dup; no
// socketpair), so that the message its holder sent through it is in the port's queue from the
// moment the adopt is read, and a port that dies meanwhile closes it with its other channels.
// False when it cannot be taken in: the right is lost, as a right whose channel cannot be made
// is (its holder sees a dead name). Called with sp.mu held.
func (s *space) adoptSend(p *port, r int) bool {
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, r, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r)}); err != nil {
		return false
	}
	rc := &rchan{fd: r, p: p, counted: true}
	p.chans[r] = rc
	p.senders++
	p.adoptedNow = true
	p.wakeDirect() // a receiver blocked on the other channel must watch this one too
	s.watchHangUp(rc)
	return true
}

// watchHangUp has the monitor report when every writer of rc, a send-right channel, is gone. A
// monitor that cannot watch it now (its dup fails at the fd limit) is asked again later: a
// hang-up never seen would keep the port's senders for good. Called with sp.mu held.
func (s *space) watchHangUp(rc *rchan) {
	if p := rc.p; p.dead || p.chans[rc.fd] != rc || rc.monitor != 0 {
		return
	}
	if rc.monitor = monitorAdd(rc.fd, unix.EPOLLRDHUP, func() { sp.hungUp(rc) }); rc.monitor == 0 {
		time.AfterFunc(watchRetry, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.watchHangUp(rc)
		})
	}
}

// watchRetry is how soon a watch the monitor could not make is asked again.
const watchRetry = 50 * time.Millisecond

// settleSendLane stops counting l's data channel as a sender of its port once no token is
// outstanding on it and no message waits on it (a queued message holds its send right), and
// fires no-senders then if it is due. Called with sp.mu held.
func (s *space) settleSendLane(l *sendLane) {
	rc, p := l.rc, l.p
	if l.outstanding > 0 || rc == nil || !rc.counted || p.chans[rc.fd] != rc {
		return
	}
	for pending(rc.fd) {
		if !s.adoptAtHead(l) {
			return // a message: it holds its send right until it is received
		}
	}
	if rc.reading.Load() > 0 {
		// A receiver took a datagram off the channel with sp.mu released (readAfterWait; it
		// counts itself in reading before its read, so an empty channel seen here cannot hide
		// one) and has not handed it in: that message may hold the lane's last send right, so
		// no-senders waits for its endRead, which settles the lane again behind it.
		rc.settleDeferred = true
		return
	}
	rc.counted = false
	p.senders--
	s.checkNoSenders(p)
}

// adoptAtHead takes the adopt at the head of l's data channel, if one is there, so that the
// rights it brings count without waiting for a receiver of the port (no-senders does not wait
// for one either). Called with sp.mu held.
func (s *space) adoptAtHead(l *sendLane) bool {
	var b [laneCtlSize + 1]byte
	var oob [128]byte // the credentials and one fd
	peek := func(flags int) (int, []int, int, bool) {
		n, oobn, got, err := recvmsg(l.rc.fd, b[:], oob[:], flags|unix.MSG_DONTWAIT)
		var m inMsg
		m.parseControl(oob[:oobn])
		return n, m.fds, got, err == nil
	}
	n, fds, flags, ok := peek(unix.MSG_PEEK)
	for _, fd := range fds {
		unix.Close(fd) // the peek's copies
	}
	if !ok || n != laneCtlSize || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 ||
		binary.LittleEndian.Uint32(b[:]) != laneMagic || binary.LittleEndian.Uint32(b[4:]) != sendLaneAdopt {
		return false
	}
	n, fds, flags, ok = peek(0)
	well := ok && n == laneCtlSize && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) == 0
	s.sendLaneControl(l, well, b[:laneCtlSize], fds)
	return ok
}

// sendLaneGone runs when l's control channel hung up: its peer exited, or let go of the lane
// (the port it came through died, or it did not keep it), and every token still outstanding on it
// went with it. A lane the peer did not keep stays noted, so that rights to that destination
// keep going as descriptors; any other is forgotten. Called with sp.mu held.
func (s *space) sendLaneGone(l *sendLane) {
	l.gone = true
	if p := l.p; !l.noKeep && p.sendLanes[l.dest] == l {
		delete(p.sendLanes, l.dest)
	}
	l.closeCtl()
	l.outstanding = 0
	s.settleSendLane(l)
	if l.rc != nil {
		// The data channel hung up with it (a peer keeps both): retired now, or by its receiver
		// after its last message.
		s.hungUpNow(l.p, l.rc)
	}
}

// closeCtl stops watching l's control channel and closes it. Called with sp.mu held.
func (l *sendLane) closeCtl() {
	monitorRemove(l.ctlMon)
	l.ctlMon = 0
	for _, fd := range []*int{&l.ctl, &l.w, &l.cw} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// dropSendLane forgets the send lane whose data channel leaves its port (retired or the port
// dead). Called with sp.mu held.
func (p *port) dropSendLane(l *sendLane) {
	l.gone = true
	l.closeCtl()
	l.outstanding = 0
	if p.sendLanes[l.dest] == l && p.dead {
		delete(p.sendLanes, l.dest)
	}
}

// remoteSendLane is a send lane's write ends in the process that holds rights on it, kept under
// the lane's key while the port lives (or, past sendLaneCacheMax, by the one right made of its
// first token).
type remoteSendLane struct {
	key     uint64
	id      portID
	fd      int // the data channel's write end
	ctl     int // the control channel's write end
	ctr     *counter
	refs    int // the cache's, one per right using fd, one per right holding its tokens
	cached  bool
	monitor uint64
	// via is the port of this process whose messages bring the lane's tokens: once it is dead,
	// no token can come any more, and the cache lets the lane go (dropSendLanesVia).
	via *port
	// ctlQ holds the control datagrams that found the control channel full, in order; a
	// goroutine sends them once there is room (flushCtl).
	ctlQ     []ctlItem
	flushing bool
}

type ctlItem struct {
	op uint32
	n  uint64
	fd int
}

func (l *remoteSendLane) get() *remoteSendLane { l.refs++; return l }

// put drops one holder; the last closes the lane's write ends, which tells the port's process
// that no token is held on it any more. Called with sp.mu held.
func (l *remoteSendLane) put() {
	l.refs--
	if l.refs > 0 {
		return
	}
	if sp.sendLanes[l.key] == l {
		delete(sp.sendLanes, l.key)
	}
	unix.Close(l.fd)
	unix.Close(l.ctl)
	l.ctr.close()
}

// control sends a control datagram on l, after any still waiting; fd (or -1) travels with it
// and is closed here once sent. Called with sp.mu held.
func (l *remoteSendLane) control(op uint32, n uint64, fd int) {
	if len(l.ctlQ) == 0 {
		err := laneCtl(l.ctl, op, n, fd)
		if !errors.Is(err, unix.EAGAIN) {
			if fd >= 0 {
				unix.Close(fd) // sent (or the port's process is gone: nobody to tell)
			}
			return
		}
	}
	if k := len(l.ctlQ) - 1; op == sendLaneReturn && k >= 0 && l.ctlQ[k].op == sendLaneReturn {
		l.ctlQ[k].n += n
	} else {
		l.ctlQ = append(l.ctlQ, ctlItem{op, n, fd})
	}
	if !l.flushing {
		l.flushing = true
		go sp.flushCtl(l.get())
	}
}

// flushCtl sends the control datagrams waiting on l as room comes, without sp.mu while it
// waits.
func (s *space) flushCtl(l *remoteSendLane) {
	for {
		waitWritable(l.ctl, -1)
		s.mu.Lock()
		for len(l.ctlQ) > 0 {
			it := l.ctlQ[0]
			err := laneCtl(l.ctl, it.op, it.n, it.fd)
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			if it.fd >= 0 {
				unix.Close(it.fd)
			}
			l.ctlQ = l.ctlQ[1:]
		}
		if len(l.ctlQ) == 0 {
			l.ctlQ, l.flushing = nil, false
			l.put()
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
	}
}

// tokenDebt is tokens of a lane that a send right holds, given back when the right goes.
type tokenDebt struct {
	l *remoteSendLane
	n uint64
}

// absorb counts one more token of l in c. Called with sp.mu held.
func (c *sendChan) absorb(l *remoteSendLane) {
	switch {
	case c.debt.l == l:
		c.debt.n++
		return
	case c.debt.l == nil:
		c.debt = tokenDebt{l.get(), 1}
		return
	}
	for i := range c.debts {
		if c.debts[i].l == l {
			c.debts[i].n++
			return
		}
	}
	c.debts = append(c.debts, tokenDebt{l.get(), 1})
}

// payDebts gives back the tokens c holds, as c goes. Called with sp.mu held.
func (c *sendChan) payDebts() {
	if c.debt.l == nil {
		return
	}
	c.debt.l.control(sendLaneReturn, c.debt.n, -1)
	c.debt.l.put()
	for _, d := range c.debts {
		d.l.control(sendLaneReturn, d.n, -1)
		d.l.put()
	}
	c.debt, c.debts = tokenDebt{}, nil
}

// copyoutSendLane names a send right that came as a token on a send lane: one more user
// reference of the name that holds the port's send rights, else a new name whose right sends on
// the lane. A lane this process does not know, named without its write ends, is one it
// dropped when the port died: the right arrives as MACH_PORT_DEAD. via is the port of this
// process the message came to: tokens on the lane come only in messages to it. Called with sp.mu
// held.
func (s *space) copyoutSendLane(m *inMsg, r *record, via *port) uint32 {
	l := s.sendLanes[r.laneKey]
	if r.fd >= 0 {
		fd, cfd, ctr := m.fds[r.fd], m.fds[r.fd+1], m.fds[r.counterFD]
		m.fds[r.fd], m.fds[r.fd+1], m.fds[r.counterFD] = -1, -1, -1
		if l != nil {
			unix.Close(fd) // the same lane again, sent before our hello arrived
			unix.Close(cfd)
			unix.Close(ctr)
		} else {
			l = &remoteSendLane{key: r.laneKey, id: r.id, fd: fd, ctl: cfd, ctr: newCounterRef(ctr), refs: 1, via: via}
			defer l.put() // this copy-out's hold
			// Every lane alive is found by its key (a token of a lane this process no longer
			// keeps may still come, in a message sent before it let go); the kept ones hold a
			// reference of the cache.
			s.sendLanes[l.key] = l
			if s.keptSendLanes < sendLaneCacheMax && laneCtl(cfd, sendLaneHello, 0, -1) == nil {
				l.cached = true
				s.keptSendLanes++
				via.viaLanes++
				l.get()
				// Dropped when the port dies (its read ends close).
				l.monitor = monitorAdd(fd, 0, func() { s.evictSendLane(l) })
			} else {
				// Used by this right alone, and closed with it.
				l.control(sendLaneNoKeep, 0, -1)
			}
		}
	}
	if l == nil {
		return abi.MACH_PORT_DEAD
	}
	if r.id != l.id {
		// A token names its lane's port, whatever its record claims: a forgery names nothing.
		l.control(sendLaneReturn, 1, -1)
		return abi.MACH_PORT_DEAD
	}
	if n, ok := s.byPort[l.id]; ok {
		if e := s.entries[n]; e != nil && (e.send != nil || e.recv != nil) {
			if e.sendRefs < urefsMax {
				e.sendRefs++
			}
			if e.recv == nil && e.send.local == nil {
				e.send.absorb(l)
				return e.name
			}
			// A lane claiming a port of this process (a forgery, as a channel claiming one
			// is): the right is local, as copyoutRight makes it, and the token names nothing
			// it needs.
			if e.send == nil {
				e.send = e.recv.newLocalSend()
			}
			l.control(sendLaneReturn, 1, -1)
			return e.name
		}
	}
	if p := s.travelling(l.id); p != nil {
		l.control(sendLaneReturn, 1, -1) // the same forgery, for a receive right in flight here
		e := s.newName()
		e.send, e.sendRefs, e.id = p.newLocalSend(), 1, l.id
		s.byPort[l.id] = e.name
		return e.name
	}
	c := &sendChan{fd: l.fd, id: l.id, refs: 1, slane: l.get(), ctr: l.ctr.ref(), ownsCtr: true}
	c.absorb(l)
	if c.dead() {
		c.put() // gives the token back to nobody: the port is gone
		return abi.MACH_PORT_DEAD
	}
	e := s.newName()
	e.send, e.sendRefs, e.id = c, 1, l.id
	s.byPort[l.id] = e.name
	return e.name
}

// evictSendLane drops a cached send lane whose port died.
func (s *space) evictSendLane(l *remoteSendLane) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uncacheSendLane(l)
}

// uncacheSendLane takes l out of the cache: it closes once no right uses it or holds its tokens
// any more, which tells the port's process. Called with sp.mu held.
func (s *space) uncacheSendLane(l *remoteSendLane) {
	if !l.cached {
		return
	}
	l.cached = false
	s.keptSendLanes--
	monitorRemove(l.monitor)
	l.via.viaLanes--
	l.via = nil
	l.get()
	l.put() // the cache's
	// Tokens held by rights that send on a channel of their own (not this lane's data channel)
	// go back now: their channel keeps the port's senders, so the lane need not stay open for
	// them. (A right in a message in flight gives its own back when it goes.)
	for _, e := range s.entries {
		if c := e.send; c != nil && c.slane != l {
			c.payDebt(l)
		}
	}
	l.put()
}

// payDebt gives back the tokens of l that c holds now. Called with sp.mu held.
func (c *sendChan) payDebt(l *remoteSendLane) {
	if c.debt.l == l {
		l.control(sendLaneReturn, c.debt.n, -1)
		l.put()
		c.debt = tokenDebt{}
		if k := len(c.debts) - 1; k >= 0 {
			c.debt, c.debts = c.debts[k], c.debts[:k]
		}
	}
	for i := 0; i < len(c.debts); i++ {
		if d := c.debts[i]; d.l == l {
			l.control(sendLaneReturn, d.n, -1)
			l.put()
			c.debts = append(c.debts[:i], c.debts[i+1:]...)
			i--
		}
	}
}

// dropSendLanesVia lets go of the send lanes whose tokens come to p, which died (its queued
// messages destroyed, and with them their tokens given back: kill), so that a process does not
// keep the lanes of its dead ports. Called with sp.mu held.
func (s *space) dropSendLanesVia(p *port) {
	if p.viaLanes == 0 {
		return // the common case: no scan per port destroyed
	}
	for _, l := range s.sendLanes {
		if l.cached && l.via == p {
			s.uncacheSendLane(l)
		}
	}
}

// destroySendLaneRight gives back the token of a message destroyed before copyout. A lane whose
// write ends came in the message closes with the message, and one that is closed already has
// no tokens left to give back: its hang-up gave them all. Called with sp.mu held.
func (s *space) destroySendLaneRight(r *record) {
	if l := s.sendLanes[r.laneKey]; l != nil {
		l.control(sendLaneReturn, 1, -1)
	}
}
