//go:build linux

package emu

import (
	"crypto/rand"
	"encoding/binary"

	"github.com/machport/machport/internal/abi"
	"golang.org/x/sys/unix"
)

// Lanes carry send-once rights as tokens, so that a request with a reply right costs no new
// socket.
//
// A lane is a persistent channel into a port (a reply port, usually) from the process that
// receives on one destination port: when this process sends a message to a port of another
// process and makes a send-once right for its own port R in it (MAKE_SEND_ONCE), the right
// travels as a token on the lane for (R, that destination). The first message also passes the
// lane's write end; the receiving process keeps it in a cache under the lane's key and says
// hello on the lane, after which the key and the token alone name the right. Until the hello
// comes, further rights for that destination go on new lanes: this process keeps no write end
// of its lanes, so that a lane hangs up when the rights on it can no longer be used. A reply on such a
// right is a datagram on the lane that ends with its token; a right destroyed unused becomes a
// "drop" datagram, which the port's receiver turns into MACH_NOTIFY_SEND_ONCE; a right that
// moves on to a third process is first made a channel of its own (an "adopt" datagram passes
// its read end here), so that its holder's death is noticed as before. If the lane's holders
// all go (the peer process exits), every token still outstanding on it becomes
// MACH_NOTIFY_SEND_ONCE, as every send-once right of a dead task is destroyed in xnu
// (ipc_right_terminate: ipc_notify_send_once).
//
// Tokens and lane keys are random 64-bit numbers: a peer can name only the rights it was given.
// A datagram on a lane whose token this port did not issue on that lane is dropped as malformed
// (RcvMalformed), and a drop or adopt naming one is ignored. The kernel still vouches for every
// message's sender (SCM_CREDENTIALS on the lane's read end).
//
// A process keeps at most laneCacheMax lanes of its peers (each costs it two fds: the write end
// and the monitor's dup), so that a peer cannot make it hold fds without bound by sending rights
// on ever new lanes. Past that, the least recently used lane leaves the cache: the rights this
// process still holds on it keep working (they hold the write end, which closes with the last of
// them), and it says "bye" on the lane, after which the port's process issues no more tokens on
// it. A right it sent on the lane by key before the bye reached it arrives here naming nothing,
// as MACH_PORT_DEAD; its token stays outstanding until the lane hangs up, and then becomes
// MACH_NOTIFY_SEND_ONCE like every other one left (laneEOF).
//
// A lane carries at most laneCapacity outstanding tokens: each token produces at most one
// datagram on it, so the lane (with its send buffer raised to laneSndBuf) can always take it
// at once, and a send-once message never waits, as on Mach.

// Lane control datagrams: u32 laneMagic, u32 op, u64 token; adopt carries one fd.
const (
	laneMagic   = 0x4c50454d // "MEPL"
	laneCtlSize = 16

	laneHello = 1 // the peer keeps the lane: the key alone names it from now on
	laneDrop  = 2 // the right of token was destroyed unused
	laneAdopt = 3 // the right of token moves to the channel whose read end comes with this
	laneBye   = 4 // the peer dropped the lane from its cache: the key names nothing any more
)

// laneSndBuf is the send buffer asked for a lane's write end; laneCapacity follows from what the
// kernel grants (net.core.wmem_max bounds it).
const laneSndBuf = 4 << 20

// laneDatagramCost bounds the kernel memory one datagram holds in the send buffer: the largest
// datagram, and its skb's overhead.
const laneDatagramCost = 2*maxDatagram + 4096

// lane is the port's side of a lane (in the process that receives on the port).
type lane struct {
	key uint64
	// w is the write end until the first message on the lane takes it: this process keeps no
	// copy, so that the lane hangs up when its holders are gone (the message destroyed in
	// flight, or the peer process exited), and the rights outstanding on it are destroyed.
	w        int
	rc       *rchan
	dest     portID
	tokens   map[uint64]struct{} // issued and not yet used, dropped or adopted
	hello    bool
	capacity int
}

// usableLane returns a lane of p for dest (a port of another process) that can take one more
// send-once right, or nil: a lane is usable once the peer keeps it (hello), or before its write
// end is given. Called with sp.mu held.
func (p *port) usableLane(dest portID) *lane {
	for _, c := range p.lanes[dest] {
		if (c.hello || c.w >= 0) && len(c.tokens) < c.capacity {
			return c
		}
	}
	return nil
}

// issue makes a send-once right on l as a token, and returns the lane's write end when the
// message must take it (-1 when the peer has it). Called with sp.mu held.
func (l *lane) issue() (tok uint64, w int) {
	w, l.w = l.w, -1
	for {
		tok := randomToken()
		if _, ok := l.tokens[tok]; !ok {
			l.tokens[tok] = struct{}{}
			return tok, w
		}
	}
}

func randomToken() uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		if t := binary.LittleEndian.Uint64(b[:]); t != 0 {
			return t
		}
	}
}

// installLane makes a lane that was made outside sp.mu (setupLane) one of its port's. Called
// with sp.mu held.
func (cs *chanSetup) installLane() *lane {
	p, rc := cs.p, cs.rc
	p.chans[rc.fd] = rc
	p.wakeDirect() // a receiver blocked on the other channel must watch this one too
	l := &lane{key: randomToken(), w: cs.w, rc: rc, dest: cs.dest, tokens: map[uint64]struct{}{}, capacity: cs.capacity}
	rc.lane = l
	if p.lanes == nil {
		p.lanes = map[portID][]*lane{}
	}
	p.lanes[cs.dest] = append(p.lanes[cs.dest], l)
	return l
}

// adopt makes r (a SOCK_SEQPACKET read end that came in an adopt datagram) a send-once channel
// of p, outside sp.mu: p is pinned, and counts the adoption until it is done (GetAttributes
// counts it as a send-once right meanwhile).
func (s *space) adopt(p *port, epfd, r int) {
	setupStarts()
	err := unix.SetsockoptInt(r, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
	if err == nil {
		err = unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, r, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(r)})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer p.unpin()
	p.adopting--
	switch {
	case p.dead:
		unix.Close(r) // its writer finds the port dead
	case err != nil:
		unix.Close(r)
		p.inject(kernelMsg(abi.MACH_NOTIFY_SEND_ONCE, nil)) // the right is lost: as destroyed
	default:
		p.chans[r] = &rchan{fd: r, sendOnce: true, p: p}
		p.wakeDirect() // a receiver blocked on the other channel must watch this one too
	}
}

// forgetLane removes a lane that is leaving its port. Called with sp.mu held.
func (p *port) forgetLane(l *lane) {
	if l.w >= 0 {
		unix.Close(l.w)
		l.w = -1
	}
	ls := p.lanes[l.dest]
	for i, c := range ls {
		if c == l {
			ls = append(ls[:i], ls[i+1:]...)
			break
		}
	}
	if len(ls) == 0 {
		delete(p.lanes, l.dest)
	} else {
		p.lanes[l.dest] = ls
	}
}

// laneEOF runs when every holder of a lane's write end is gone: each right still outstanding on
// it was destroyed with its holder. Called with sp.mu held.
func (p *port) laneEOF(l *lane) {
	for range l.tokens {
		p.inject(kernelMsg(abi.MACH_NOTIFY_SEND_ONCE, nil))
	}
	clear(l.tokens)
	p.forgetLane(l)
}

// laneControl acts on a control datagram read from a lane. fds are the descriptors that came
// with it; every one is either adopted or closed. Called with sp.mu held.
func (s *space) laneControl(p *port, l *lane, b []byte, fds []int) {
	le := binary.LittleEndian
	op, tok := le.Uint32(b[4:]), le.Uint64(b[8:])
	adopted := -1
	defer func() {
		for _, fd := range fds {
			if fd >= 0 && fd != adopted {
				unix.Close(fd)
			}
		}
	}()
	switch op {
	case laneHello:
		if len(fds) == 0 {
			l.hello = true
		}
		return
	case laneBye:
		if len(fds) == 0 && l.hello {
			// No new token goes on it; the outstanding ones still may come back on it, and
			// become MACH_NOTIFY_SEND_ONCE when it hangs up (laneEOF).
			l.hello = false
			p.forgetLane(l)
		}
		return
	case laneDrop, laneAdopt:
	default:
		return
	}
	if _, ok := l.tokens[tok]; !ok {
		return // a token this lane never issued, or one already used: forged
	}
	if op == laneDrop {
		if len(fds) != 0 {
			return
		}
		delete(l.tokens, tok)
		p.inject(kernelMsg(abi.MACH_NOTIFY_SEND_ONCE, nil))
		return
	}
	if len(fds) != 1 || !isSeqpacket(fds[0]) {
		return
	}
	delete(l.tokens, tok)
	if p.dead {
		return // the channel closes: its writer finds the port dead
	}
	if p.openFDs() != nil {
		p.inject(kernelMsg(abi.MACH_NOTIFY_SEND_ONCE, nil)) // the right is lost: as destroyed
		return
	}
	adopted = fds[0]
	p.pin()
	p.adopting++
	go s.adopt(p, p.epfd, adopted) // no channel setup under sp.mu
}

// isSeqpacket reports whether fd is an AF_UNIX SOCK_SEQPACKET socket, as every channel is.
func isSeqpacket(fd int) bool {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil || typ != unix.SOCK_SEQPACKET {
		return false
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	return err == nil && dom == unix.AF_UNIX
}

// remoteLane is a lane's write end in the process that holds rights on it, cached under the
// lane's key while the port lives.
type remoteLane struct {
	key     uint64
	fd      int
	refs    int // the cache's, and one per right
	monitor uint64
	// prev and next link the cached lanes, most recently used first (laneLRU).
	prev, next *remoteLane
}

// laneCacheMax is how many lanes of its peers a process keeps (see the top of this file). A
// variable for tests.
var laneCacheMax = 1024

// laneLRU lists the cached lanes (space.lanes), most recently used first. Guarded by sp.mu.
var laneLRU struct {
	head, tail *remoteLane
	n          int
}

// cacheLane puts l, just cached, first in laneLRU, and drops the least recently used lanes
// beyond laneCacheMax. Called with sp.mu held.
func (s *space) cacheLane(l *remoteLane) {
	for laneLRU.n >= laneCacheMax && laneLRU.tail != nil {
		s.dropLane(laneLRU.tail)
	}
	linkLane(l)
}

// touchLane makes the cached lane l the most recently used. Called with sp.mu held.
func touchLane(l *remoteLane) {
	if laneLRU.head != l {
		unlinkLane(l)
		linkLane(l)
	}
}

func linkLane(l *remoteLane) {
	l.prev, l.next = nil, laneLRU.head
	if laneLRU.head != nil {
		laneLRU.head.prev = l
	} else {
		laneLRU.tail = l
	}
	laneLRU.head = l
	laneLRU.n++
}

func unlinkLane(l *remoteLane) {
	if l.prev != nil {
		l.prev.next = l.next
	} else {
		laneLRU.head = l.next
	}
	if l.next != nil {
		l.next.prev = l.prev
	} else {
		laneLRU.tail = l.prev
	}
	l.prev, l.next = nil, nil
	laneLRU.n--
}

// dropLane takes a cached lane out of the cache: the port's process is told (bye), the monitor
// stops watching it, and its write end closes once no right of this process uses it any more.
// Called with sp.mu held.
func (s *space) dropLane(l *remoteLane) {
	delete(s.lanes, l.key)
	unlinkLane(l)
	monitorRemove(l.monitor)
	laneCtl(l.fd, laneBye, 0, -1) // best effort: without it, the lane's hang-up tells
	l.put()
}

func (l *remoteLane) put() {
	l.refs--
	if l.refs == 0 {
		unix.Close(l.fd)
	}
}

// laneCtl writes a control datagram; fd (or -1) travels with it.
func laneCtl(lfd int, op uint32, tok uint64, fd int) error {
	var b [laneCtlSize]byte
	le := binary.LittleEndian
	le.PutUint32(b[0:], laneMagic)
	le.PutUint32(b[4:], op)
	le.PutUint64(b[8:], tok)
	var oob []byte
	if fd >= 0 {
		oob = unix.UnixRights(fd)
	}
	return ignoringEINTR(func() error {
		return unix.Sendmsg(lfd, b[:], oob, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	})
}

// copyoutLane names a send-once right that came as a lane token. A key this process does not
// know, without the lane's write end, names nothing: the right arrives as MACH_PORT_DEAD. Called
// with sp.mu held.
func (s *space) copyoutLane(m *inMsg, r *record) uint32 {
	fd := -1
	if r.fd >= 0 {
		fd, m.fds[r.fd] = m.fds[r.fd], -1
	}
	l := s.lanes[r.laneKey]
	watched := false // the lane was cached before this message, under its monitor
	switch {
	case l == nil && fd < 0:
		return abi.MACH_PORT_DEAD
	case l == nil:
		l = &remoteLane{key: r.laneKey, fd: fd, refs: 1}
		if laneCtl(fd, laneHello, 0, -1) != nil {
			unix.Close(fd)
			return abi.MACH_PORT_DEAD
		}
		s.cacheLane(l)
		s.lanes[l.key] = l
		// Dropped from the cache when the port dies (its read end closes).
		l.monitor = monitorAdd(fd, 0, func() { s.evictLane(l) })
	case fd >= 0:
		unix.Close(fd) // the same lane again, sent before our hello arrived
		touchLane(l)
	default:
		touchLane(l)
		watched = true
	}
	l.refs++
	c := &sendChan{fd: l.fd, sendOnce: true, refs: 1, lane: l, token: r.token}
	// A lane already cached needs no poll to see whether its port died: its monitor evicts it
	// when the lane hangs up, and a right on an evicted lane arrives dead above. Polling it here
	// was one system call more per request than a socket's ping-pong.
	if !watched && c.dead() {
		c.spent = true // nobody to tell
		c.put()
		return abi.MACH_PORT_DEAD
	}
	e := s.newName()
	e.sonce = c
	return e.name
}

func (s *space) evictLane(l *remoteLane) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lanes[l.key] == l {
		delete(s.lanes, l.key)
		unlinkLane(l)
		l.put()
	}
}

// destroyLaneRight gives up a lane right that arrived in a message destroyed before copyout.
// Called with sp.mu held.
func (s *space) destroyLaneRight(m *inMsg, r *record) {
	fd := -1
	if r.fd >= 0 && int(r.fd) < len(m.fds) {
		fd = m.fds[r.fd]
	}
	if l := s.lanes[r.laneKey]; l != nil {
		fd = l.fd
	}
	if fd >= 0 {
		laneCtl(fd, laneDrop, r.token, -1)
	}
}

// pullLanes reads the messages waiting on p's lanes into its local queue, where they can be
// counted (a lane holds many; a socket tells only how many bytes it holds). Called with sp.mu
// held.
func (s *space) pullLanes(p *port) {
	for _, rc := range p.chans {
		for rc.lane != nil && p.chans[rc.fd] == rc {
			m, kr := s.readChan(p, rc)
			if m == nil {
				if kr == abi.MACH_MSG_SUCCESS {
					break
				}
				continue // a malformed datagram, dropped
			}
			// The receiver blocked in recvmsg on this lane, if any, may have been woken for
			// this very message: it looks at the queue again.
			p.inject(m)
		}
	}
}
