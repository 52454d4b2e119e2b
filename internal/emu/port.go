//go:build linux

package emu

import (
	"encoding/binary"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/machport/machport/internal/abi"
	"golang.org/x/sys/unix"
)

// port is a receive right's queue: the read ends of its channels and a local FIFO of messages
// the emulation made itself (notifications) or put back (too large to receive), all behind one
// epoll fd so that a receiver, or a port set, waits on a single descriptor.
type port struct {
	id    portID
	name  uint32
	key   uint64 // identifies the port in epoll data
	epfd  int    // -1 until the port needs it (openFDs)
	evfd  int    // semaphore eventfd: one count per message in local; -1 with epfd
	chans map[int]*rchan
	lanes map[portID][]*lane // by destination port (lane.go)
	// sendLanes are the send lanes into the port, by destination port (sendlane.go).
	sendLanes map[portID]*sendLane
	local     []*inMsg
	ctr       *counter // nil until a send right's channel, or a sender waiting for room, needs it
	qlimit    uint32   // the queue limit, while there is no counter
	// queuedLocal counts the messages of local send rights holding a queue slot while there is
	// no counter (the counter takes the count over when it is made).
	queuedLocal int32
	mscount     uint32
	seqno       uint32
	senders     int // channels (not send-once) whose writers have not all gone
	// localSenders counts the local send rights (sendChan with local set) not yet released: the
	// names' and those held by sends in progress and by queued messages.
	localSenders int
	adopting     int // send-once channels being adopted outside sp.mu (lane.go's adopt)
	// adoptedNow: a send right's channel was adopted during a receive's look at the port, which
	// looks again (recv.go: tryPortHint), for the message that channel may hold already.
	adoptedNow bool
	viaLanes   int // the send lanes this process keeps whose tokens come to this port
	ns         *notifyReq
	pd         *port // port-destroyed notifications go there
	sets       map[*pset]struct{}
	context    uint64
	guarded    bool
	dead       bool
	// waiters counts the receivers blocked on epfd or in recvmsg, and the channel setups working
	// on epfd outside sp.mu (pin); the last one closes a dead port's fds.
	waiters int
	direct  directWait
	pollRec pollRecord // whether receiveDirect polls before it blocks (pollrecv.go)
	// poll is a dup of epfd in Go's poller while receivers park there (recv.go: pollConn).
	poll   *os.File
	pollRC syscall.RawConn
	// moveWakes counts the extra counts put on evfd to wake the receivers blocked on the port
	// when its receive right moved away; the last of them takes them off again.
	moveWakes int
	// inTransit is the port in whose queue p's receive right travels inside this process, while
	// no name holds it (moved in a message, or sent with a port-destroyed notification).
	inTransit *port
	// nsQuiet: the send rights a failed send made are going, and with them the port's last
	// sender; that release is no no-senders (quietMade). Cleared when a send right is made.
	nsQuiet bool
	// turn is held by the blocking receiver of the port that waits in the kernel; the others
	// wait in Go, in turnQ, for it to be handed to them (recv.go: passTurn).
	turn  bool
	turnQ []chan struct{}
}

// movedAway wakes the receivers blocked on p, whose receive right just left their name (moved in
// a message): they return MACH_RCV_PORT_CHANGED, as xnu's ipc_mqueue_changed makes them
// (THREAD_RESTART, turned into it by ipc_mqueue_receive_results). Called with sp.mu held.
func (p *port) movedAway() {
	if p.waiters == 0 {
		return
	}
	p.moveWakes++
	p.wake() // epoll waiters; taken off by the last of them (see takeMoveWakes)
	p.wakeDirect()
}

// takeMoveWakes removes the counts movedAway put on evfd, once no receiver waits any more (they
// would otherwise make every later wait on the port return at once). Called with sp.mu held.
func (p *port) takeMoveWakes() {
	if p.waiters > 0 || p.dead {
		return
	}
	for ; p.moveWakes > 0; p.moveWakes-- {
		p.unwake()
	}
}

// directWait is the receiver blocked in recvmsg on the port's only channel (receiveDirect).
type directWait struct {
	active bool
	woken  bool
	stop   atomic.Bool // set with woken, for a receiver that polls (pollRecv)
	tid    int
	gen    uint64 // counts direct waits, so a late re-signal finds out its wait is over
}

// directResignal is how soon wakeDirect signals again a receiver that is still blocked: a signal
// that arrives just before the thread enters recvmsg is lost.
const directResignal = 100 * time.Microsecond

// wakeDirect interrupts the receiver blocked in recvmsg, if any, so that it looks at the port
// again. SIGURG is the signal: Go's runtime already sends it to its threads to preempt them,
// so every Go program handles it and ignores the ones it did not ask for. Called with sp.mu
// held.
func (p *port) wakeDirect() {
	if !p.direct.active || p.direct.woken {
		return
	}
	p.direct.woken = true
	p.direct.stop.Store(true)
	unix.Tgkill(os.Getpid(), p.direct.tid, unix.SIGURG)
	gen := p.direct.gen
	time.AfterFunc(directResignal, func() { p.resignal(gen, directResignal, 1) })
}

// directResignals is how many signals a blocked receiver may leave unanswered before the
// process stops blocking receivers in recvmsg, if its SIGURG is ignored or blocked (sigurgDeaf;
// a thread that is only slow to run is signalled on).
const directResignals = 6

func (p *port) resignal(gen uint64, delay time.Duration, tries int) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if !p.direct.active || p.direct.gen != gen {
		return
	}
	if tries >= directResignals && sigurgDeaf(p.direct.tid) {
		directOff.Store(true) // this receiver returns at directTimeout; later ones use epoll
		return
	}
	unix.Tgkill(os.Getpid(), p.direct.tid, unix.SIGURG)
	delay *= 2
	time.AfterFunc(delay, func() { p.resignal(gen, delay, tries+1) })
}

type notifyReq struct {
	notify *port
}

// rchan is one channel's read end.
type rchan struct {
	fd       int
	sendOnce bool
	used     bool // a send-once channel delivered its message
	hungup   bool // every writer is gone
	counted  bool // counts in p.senders (a channel for send rights, not yet retired)
	// rcvTimeout: SO_RCVTIMEO is set for receiveDirect. readers: how many receivers read fd
	// with sp.mu released (receiveDirect, readAfterWait), so removing the channel leaves closing
	// fd to the last of them (closeDeferred), lest the number be reused under them.
	rcvTimeout, closeDeferred bool
	readers                   int
	// reading: how many receivers are between their read after a wait and endRead (counted
	// without sp.mu); settleDeferred: settling the channel's send lane waits for the last.
	reading        atomic.Int32
	settleDeferred bool
	monitor        uint64
	p              *port
	lane           *lane     // set when the channel is a lane (lane.go)
	slane          *sendLane // set when the channel is a send lane's data channel
}

var portKeys atomic.Uint64

func newPort(qlimit uint32) (*port, error) {
	// A port costs no fd until it needs one (openFDs, counter): 100,000 ports that no other
	// process holds, or that nobody waits on, fit in a process.
	return &port{id: newPortID(), key: portKeys.Add(1), epfd: -1, evfd: -1, qlimit: qlimit,
		chans: map[int]*rchan{}, sets: map[*pset]struct{}{}}, nil
}

// openFDs makes the port's epoll fd and eventfd, when a channel joins it, a set takes it in or a
// receiver waits on it. The eventfd starts with one count per message already queued locally.
// Called with sp.mu held.
func (p *port) openFDs() error {
	if p.epfd >= 0 {
		return nil
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	evfd, err := unix.Eventfd(uint(len(p.local)), unix.EFD_CLOEXEC|unix.EFD_NONBLOCK|unix.EFD_SEMAPHORE)
	if err != nil {
		unix.Close(epfd)
		return err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return err
	}
	p.epfd, p.evfd = epfd, evfd
	return nil
}

// counter returns the port's queue counter, made when the first send right's channel needs it.
// Called with sp.mu held.
func (p *port) counter() (*counter, error) {
	if p.ctr == nil {
		c, err := newCounter(p.qlimit)
		if err != nil {
			return nil, err
		}
		// The slots local senders hold move to the counter, which counts for everyone from now.
		atomic.StoreInt32(c.count(), p.queuedLocal)
		p.queuedLocal = 0
		p.ctr = c
	}
	return p.ctr, nil
}

// reserve takes a queue slot for a message of a local send right, without waiting. Called with
// sp.mu held.
func (p *port) reserve() bool {
	if p.ctr == nil {
		if p.queuedLocal < int32(p.qlimit) {
			p.queuedLocal++
			return true
		}
		return false
	}
	if p.ctr.ensure() != nil {
		return false
	}
	for {
		n := atomic.LoadInt32(p.ctr.count())
		if n >= atomic.LoadInt32(p.ctr.limit()) || atomic.LoadInt32(p.ctr.dead()) != 0 {
			return false
		}
		if atomic.CompareAndSwapInt32(p.ctr.count(), n, n+1) {
			return true
		}
	}
}

// releaseSlot frees the queue slot of a message of a local send right that left the queue.
// Called with sp.mu held.
func (p *port) releaseSlot() {
	switch {
	case p.ctr != nil:
		p.ctr.release()
	case p.queuedLocal > 0:
		p.queuedLocal--
	}
}

// pin keeps the port's fds open while a channel setup works on them without sp.mu: it counts as
// a waiter, whose last one closes a dead port's fds. Called with sp.mu held.
func (p *port) pin() { p.waiters++ }

// unpin ends a pin. Called with sp.mu held.
func (p *port) unpin() {
	p.waiters--
	if p.dead && p.waiters == 0 {
		p.closeFDs()
	}
	p.takeMoveWakes()
}

// newLocalSend makes a send right to p held inside p's own process: a reference to the port,
// which costs no fd. A message sent through it goes straight into the port's local queue; a
// channel is made for it only when it is carried to another process (exportSetup).
func (p *port) newLocalSend() *sendChan {
	p.localSenders++
	return &sendChan{fd: -1, id: p.id, refs: 1, local: p}
}

// enqueue queues a message sent inside this process (deliverLocal). A port that died meanwhile
// destroys it, as a message to a port that dies while queued is destroyed. Called with sp.mu
// held.
func (p *port) enqueue(m *inMsg) {
	p.inject(m)
}

// limit is the port's queue limit; queued, the messages its send rights have queued.
func (p *port) limit() int32 {
	if p.ctr == nil {
		return int32(p.qlimit)
	}
	return atomic.LoadInt32(p.ctr.limit())
}

func (p *port) queuedBySenders() int32 {
	if p.ctr == nil {
		return p.queuedLocal
	}
	return atomic.LoadInt32(p.ctr.count())
}

// wake counts one more message (or wake-up) on the eventfd, if receivers can wait on it yet.
func (p *port) wake() {
	if p.evfd >= 0 {
		wake(p.evfd)
	}
}

// unwake takes one count off the eventfd.
func (p *port) unwake() {
	if p.evfd >= 0 {
		var v [8]byte
		unix.Read(p.evfd, v[:])
	}
}

// pollable hands an epoll fd to Go's poller, so a receiver with a deadline or a context parks
// its goroutine instead of blocking a thread. A port's own epoll fd goes there only once more
// than one receiver of the process waits at a time (recv.go: crowded): in the poller, it wakes
// an idle thread of the runtime on every message.
func pollable(fd int) *os.File {
	unix.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), "machport-epoll")
}

func (p *port) closeFDs() {
	if p.poll != nil {
		p.unpoll()
	}
	if p.epfd >= 0 {
		unix.Close(p.epfd)
		unix.Close(p.evfd)
		p.epfd, p.evfd = -1, -1
	}
	if p.ctr != nil {
		p.ctr.kill() // senders waiting for room learn the port is gone
		p.ctr.close()
		p.ctr = nil
	}
}

// removeChan closes a channel's read end; a channel that still counted as a sender stops
// counting. Called with sp.mu held.
func (p *port) removeChan(rc *rchan) {
	if p.chans[rc.fd] != rc {
		return // already removed (its fd number may belong to a newer channel now)
	}
	delete(p.chans, rc.fd)
	if rc.lane != nil {
		p.forgetLane(rc.lane)
	}
	if rc.slane != nil {
		p.dropSendLane(rc.slane)
	}
	monitorRemove(rc.monitor)
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, rc.fd, nil)
	if rc.readers > 0 {
		// A receiver is in recvmsg on fd: shutting the socket down returns it at once and makes
		// senders fail with EPIPE; the receiver closes fd, so its number is not reused under it.
		unix.Shutdown(rc.fd, unix.SHUT_RDWR)
		rc.closeDeferred = true
	} else {
		unix.Close(rc.fd)
	}
	if rc.counted {
		rc.counted = false
		p.senders--
	}
}

// retire removes a channel whose writers are gone once its last message was read: only then
// has its sender left, as in Mach a queued message holds its send right. Called with sp.mu held.
func (s *space) retire(p *port, rc *rchan) {
	senders := rc.counted || rc.slane != nil
	p.removeChan(rc)
	if senders {
		// Only a channel of send rights held senders: a send-once right never counts in
		// ip_srights, and destroying one never fires no-senders in xnu.
		s.checkNoSenders(p)
	}
}

// hungUp runs when every writer of a channel is gone.
func (s *space) hungUp(rc *rchan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := rc.p
	if p.dead || rc.hungup || p.chans[rc.fd] != rc {
		return // already retired; the fd number may belong to a newer channel now
	}
	rc.hungup = true
	if !pending(rc.fd) {
		s.retire(p, rc) // else the receiver retires it after the last message
	}
}

// hungUpNow retires a channel of p whose writers are all gone already, without waiting for the
// monitor to report it (its report then finds the channel retired). Called with sp.mu held.
func (s *space) hungUpNow(p *port, rc *rchan) {
	if p.dead || rc.hungup || p.chans[rc.fd] != rc || !writersGone(rc.fd) {
		return // a copy of the write end lives on (in another process, or in a message)
	}
	rc.hungup = true
	if !pending(rc.fd) {
		s.retire(p, rc) // else the receiver retires it after the last message
	}
}

// writersGone reports whether every copy of a read end's write end is closed.
func writersGone(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLRDHUP) != 0
}

// sendOnceGone acts at once on a send-once channel of this process's port whose write end was
// just closed here: when no copy of it is left (none sent away in a message) and it carried no
// message, the right was destroyed, and MACH_NOTIFY_SEND_ONCE is queued now, as xnu queues it
// before mach_port_deallocate returns (ipc_right_dealloc → ipc_notify_send_once_and_unlock), so
// that the port's status counts it and a poll finds it. A channel a receiver is reading without
// the lock, or one with a message queued, is left to its reader, which sees the end of file.
// Called with sp.mu held.
func (s *space) sendOnceGone(rc *rchan) {
	p := rc.p
	if p == nil || p.dead || rc.hungup || rc.readers > 0 || p.chans[rc.fd] != rc || !writersGone(rc.fd) || pending(rc.fd) {
		return
	}
	s.channelEOF(p, rc)
}

// pending reports whether a read end still has a datagram queued.
func pending(fd int) bool {
	n, err := unix.IoctlGetInt(fd, unix.SIOCINQ)
	return err == nil && n > 0
}

// checkNoSenders fires an armed no-senders request when the port has no senders left. The
// request's sync counts only when it is made (RequestNotification): xnu fires an armed request
// whenever the last send right goes, whatever the make-send count (ipc_port_release_send_and_unlock,
// ipc_notify_no_senders_prepare).
func (s *space) checkNoSenders(p *port) {
	if p.dead || p.senders > 0 || p.localSenders > 0 {
		return
	}
	if e := s.entries[p.name]; e != nil && e.sendRefs > 0 {
		return
	}
	if p.nsQuiet {
		p.nsQuiet = false // the last sender was a right that never existed for anyone
		return
	}
	if p.ns == nil {
		return
	}
	req := p.ns
	p.ns = nil
	var body [12]byte // NDR record, then the make-send count
	binary.LittleEndian.PutUint32(body[8:], p.mscount)
	req.notify.inject(kernelMsg(abi.MACH_NOTIFY_NO_SENDERS, body[:]))
}

// inject queues a message the emulation made. Called with sp.mu held.
func (p *port) inject(m *inMsg) {
	if p.dead {
		m.destroy()
		return
	}
	p.local = append(p.local, m)
	p.wake()
	p.wakeDirect()
}

// popLocal takes the head of the local queue. An emptied queue starts again at the front of its
// array, so that a port fed by local sends reuses it instead of allocating one per message.
func (p *port) popLocal() *inMsg { return popFront(&p.local) }

// popFront takes the head of a queue kept in a slice; an emptied queue starts again at the front
// of its array, which it then reuses.
func popFront[T any](q *[]T) T {
	var zero T
	v := (*q)[0]
	(*q)[0] = zero
	if len(*q) == 1 {
		*q = (*q)[:0]
	} else {
		*q = (*q)[1:]
	}
	return v
}

// unget puts a message back at the head of the local queue (a receive that was too small).
func (p *port) unget(m *inMsg) {
	p.local = append([]*inMsg{m}, p.local...)
	p.wake()
	p.wakeDirect()
}

// destroyReceive gives up a receive right: the port dies (or, with a port-destroyed request,
// travels to the notify port). Called with sp.mu held.
func (s *space) destroyReceive(e *entry) {
	p := e.recv
	e.recv = nil
	if p.pd != nil && (p.pd.dead || p.pd == p || circular(p, p.pd)) {
		// xnu's ipc_port_destroy checks the port-destroyed notification for a cycle
		// (ipc_port_check_circularity): a receive right that would travel in a queue only it
		// leads to is not sent; the request's send-once right is released silently
		// (ipc_port_release_sonce) and the port destroyed, with what its queue carries.
		p.pd = nil
	}
	if p.pd != nil {
		notify := p.pd
		p.pd = nil
		// The receivers blocked on the name return MACH_RCV_PORT_CHANGED, as when the right
		// moves in a message: xnu's ipc_port_destroy puts the port in limbo as a move does
		// (ipc_port_mark_in_limbo_pd → ipc_port_prepare_move; older xnu: ipc_port_clear_receiver
		// → ipc_mqueue_changed) before it sends the right.
		p.movedAway()
		tok := s.parkReceive(p)
		p.inTransit = notify
		m := kernelMsg(abi.MACH_NOTIFY_PORT_DESTROYED, nil)
		m.dg.descs = []record{{kind: kindReceive, typ: typePortReceive, fd: -1, counterFD: -1, token: tok}}
		notify.inject(m)
		if e.sendRefs == 0 {
			s.dropIfEmpty(e)
		}
		return
	}
	p.kill()
	if e.sendRefs > 0 {
		// The name's send rights die with the port.
		e.send.put()
		e.send = nil
		s.becomeDead(e, e.sendRefs)
		e.sendRefs = 0
		s.fireDeadName(e)
	}
	if n, ok := s.byPort[p.id]; ok && n == e.name {
		delete(s.byPort, p.id)
	}
	s.dropIfEmpty(e)
}

// parkReceive holds a receive right that is travelling inside this process.
func (s *space) parkReceive(p *port) uint64 {
	tok := s.newToken(p)
	s.leaveSets(p)
	if n, ok := s.byPort[p.id]; ok && s.entries[n] != nil && s.entries[n].recv == nil && s.entries[n].sendRefs == 0 {
		delete(s.byPort, p.id)
	}
	return tok
}

// leaveSets takes a receive right that is leaving its name out of every port set, as Mach does
// when a receive right moves.
func (s *space) leaveSets(p *port) {
	for ps := range p.sets {
		ps.remove(p)
	}
}

// kill destroys the port: its channels close (senders see EPIPE and hang-ups), queued messages
// are destroyed with their rights. Called with sp.mu held.
func (p *port) kill() {
	p.dead = true
	if p.ctr != nil {
		p.ctr.kill() // senders waiting for room learn it now, not when the fds close
	}
	for ps := range p.sets {
		ps.remove(p)
	}
	// This process's send rights to the port are references to it (newLocalSend): their name
	// becomes a dead name now, and its dead-name request fires, as xnu's ipc_port_destroy
	// fires them. (Send rights coalesce, so one name holds them all.)
	if n, ok := sp.byPort[p.id]; ok {
		if e := sp.entries[n]; e != nil && e.send != nil && e.send.local == p {
			sp.refreshDead(e)
		}
	}
	for _, rc := range p.chans {
		// Queued messages die with the port, and with them the rights they carry (a receive
		// right travelling inside this process would otherwise live on, unreachable). The
		// channel is shut for reading first: a message sent after the drain fails with EPIPE
		// at its sender, instead of dying unread with the socket, and the tokens it carries
		// (sendlane.go, lane.go) with it, never given back.
		unix.Shutdown(rc.fd, unix.SHUT_RD)
		sp.drain(p, rc, func() bool { return p.chans[rc.fd] != rc })
		p.removeChan(rc)
	}
	for _, m := range p.local {
		m.destroy()
	}
	p.local = nil
	sp.dropSendLanesVia(p)
	if p.waiters > 0 {
		// Blocked receivers see the death: those in epoll through the eventfd, one in recvmsg
		// because removeChan shut its channel down. The last one closes the fds.
		p.wake()
		return
	}
	p.closeFDs()
}

// drain destroys the messages queued on a channel, with the rights they carry, until none is
// left or stop reports true. Called with sp.mu held.
func (s *space) drain(p *port, rc *rchan, stop func() bool) {
	for {
		m, kr := s.readChan(p, rc)
		if m == nil && kr == abi.MACH_MSG_SUCCESS {
			return
		}
		if m != nil {
			m.destroy()
			m.free()
		}
		if stop() {
			return
		}
	}
}

// wake makes an eventfd readable.
func wake(fd int) {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	unix.Write(fd, one[:])
}

// fireDeadName delivers a requested dead-name notification for an entry that became a dead name.
func (s *space) fireDeadName(e *entry) {
	if e.dn == nil {
		return
	}
	req := e.dn
	e.dn = nil
	monitorRemove(req.monitor)
	if e.deadRefs < urefsMax { // a pegged count stays pegged, as in xnu's ipc_right_check
		e.deadRefs++ // the notification carries a dead-name reference
	}
	var body [12]byte
	binary.LittleEndian.PutUint32(body[8:], e.name)
	req.notify.inject(kernelMsg(abi.MACH_NOTIFY_DEAD_NAME, body[:]))
}

// RequestNotification is mach_port_request_notification. The notify port must be a receive
// right of this process (MAKE_SEND_ONCE); the previous request is replaced and reported as
// MACH_PORT_NULL, except a port-destroyed request, of which a port has at most one: a second
// fails with KERN_FAILURE, as in xnu.
func RequestNotification(name uint32, id int32, sync, notify, disp uint32) (uint32, int32) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.entries[name]
	if e == nil {
		return 0, abi.KERN_INVALID_NAME
	}
	var target *port
	if notify != abi.MACH_PORT_NULL {
		ne := sp.entries[notify]
		if ne == nil || ne.recv == nil || disp != dispMakeSendOnce {
			return 0, abi.KERN_INVALID_CAPABILITY
		}
		target = ne.recv
	}
	sp.refreshDead(e)
	switch id {
	case abi.MACH_NOTIFY_NO_SENDERS:
		if e.recv == nil {
			return 0, abi.KERN_INVALID_RIGHT
		}
		e.recv.ns = nil
		if target != nil {
			e.recv.ns = &notifyReq{notify: target}
			if sync <= e.recv.mscount {
				// xnu's ipc_port_nsrequest fires a request at once only if sync <= mscount;
				// armed, it fires when the last send right goes (checkNoSenders).
				sp.checkNoSenders(e.recv)
			}
		}
	case abi.MACH_NOTIFY_PORT_DESTROYED:
		if e.recv == nil {
			return 0, abi.KERN_INVALID_RIGHT
		}
		if target != nil && e.recv.pd != nil {
			// xnu allows one registration and refuses a second (ipc_policy.c,
			// ipc_allow_register_pd_notification: KERN_FAILURE); no previous right is returned.
			return 0, abi.KERN_FAILURE
		}
		e.recv.pd = target
	case abi.MACH_NOTIFY_DEAD_NAME:
		if e.dn != nil {
			monitorRemove(e.dn.monitor)
			e.dn = nil
		}
		if target == nil {
			return 0, abi.KERN_SUCCESS
		}
		switch {
		case e.deadRefs > 0 && e.sendRefs == 0 && e.sonce == nil:
			if sync == 0 {
				return 0, abi.KERN_INVALID_ARGUMENT
			}
			e.dn = &deadNameReq{notify: target}
			sp.fireDeadName(e)
		case e.recv != nil && e.sendRefs > 0, e.send != nil && e.send.local != nil:
			e.dn = &deadNameReq{notify: target} // fires when this process destroys the port (kill)
		case e.send != nil || e.sonce != nil:
			c := e.send
			if c == nil {
				c = e.sonce
			}
			req := &deadNameReq{notify: target}
			e.dn = req
			n := e.name
			req.monitor = monitorAdd(c.fd, 0, func() { sp.deadNameFired(n, req) })
		default:
			return 0, abi.KERN_INVALID_RIGHT
		}
	default:
		return 0, abi.KERN_INVALID_VALUE
	}
	return abi.MACH_PORT_NULL, abi.KERN_SUCCESS
}

func (s *space) deadNameFired(name uint32, req *deadNameReq) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[name]
	if e == nil || e.dn != req {
		return
	}
	s.refreshDead(e)
	if e.deadRefs > 0 && e.sendRefs == 0 && e.sonce == nil {
		s.fireDeadName(e)
	}
}

// SetAttributes is mach_port_set_attributes (MACH_PORT_LIMITS_INFO).
func SetAttributes(name uint32, flavor int32, info []int32) int32 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e, kr := sp.receiveEntry(name)
	if kr != abi.KERN_SUCCESS {
		return kr
	}
	if flavor != abi.MACH_PORT_LIMITS_INFO || len(info) < abi.MACH_PORT_LIMITS_INFO_COUNT {
		return abi.KERN_INVALID_ARGUMENT
	}
	if info[0] < 0 || info[0] > abi.MACH_PORT_QLIMIT_MAX {
		return abi.KERN_INVALID_VALUE
	}
	if e.recv.ctr != nil {
		e.recv.ctr.setLimit(uint32(info[0]))
	}
	e.recv.qlimit = uint32(info[0])
	return abi.KERN_SUCCESS
}

// GetAttributes is mach_port_get_attributes.
func GetAttributes(name uint32, flavor int32, info []int32) (int, int32) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e, kr := sp.receiveEntry(name)
	if kr != abi.KERN_SUCCESS {
		return 0, kr
	}
	p := e.recv
	switch flavor {
	case abi.MACH_PORT_LIMITS_INFO:
		if len(info) < abi.MACH_PORT_LIMITS_INFO_COUNT {
			return 0, abi.KERN_INVALID_ARGUMENT
		}
		info[0] = p.limit()
		return abi.MACH_PORT_LIMITS_INFO_COUNT, abi.KERN_SUCCESS
	case abi.MACH_PORT_RECEIVE_STATUS:
		if len(info) < abi.MACH_PORT_RECEIVE_STATUS_COUNT {
			return 0, abi.KERN_INVALID_ARGUMENT
		}
		info[0] = int32(b2u(len(p.sets) > 0)) // xnu reports membership, not which set
		info[1] = int32(p.seqno)
		info[2] = int32(p.mscount)
		info[3] = p.limit()
		// The counter counts what came through send rights; a message on a send-once right
		// bypasses the queue limit but is queued all the same (xnu's mps_msgcount is
		// imq_msgcount, every kmsg on the queue).
		sp.pullLanes(p)
		// A send-once right destroyed where the emulation could not tell at once (its write end
		// closed with a message destroyed here, or while a dead-name request's watch or a
		// receiver held on to the channel) has its MACH_NOTIFY_SEND_ONCE queued now, as xnu
		// queued it when the right went.
		for _, rc := range p.chans { // sendOnceGone may remove rc: allowed during range
			if rc.sendOnce && rc.lane == nil {
				sp.sendOnceGone(rc)
			}
		}
		queued := p.queuedBySenders()
		for _, m := range p.local {
			if !m.counted { // a queued message of a local send right counts in the above
				queued++
			}
		}
		sorights := p.adopting
		for _, rc := range p.chans {
			if rc.lane != nil {
				// Its rights are the tokens outstanding; what it holds queued is read into
				// the local queue to be counted there.
				sorights += len(rc.lane.tokens)
				continue
			}
			if !rc.sendOnce || rc.used {
				continue
			}
			if pending(rc.fd) {
				queued++
			}
			if !rc.hungup {
				sorights++
			}
		}
		// A queued message that came through a send-once right still holds it until it is
		// received (xnu's ipc_object_copyout_dest consumes it): notifications included.
		for _, m := range p.local {
			if m.destType == typePortSendOnce {
				sorights++
			}
		}
		info[4] = queued
		info[5] = int32(sorights + sp.armedRequests(p))
		for _, l := range p.sendLanes {
			sp.readSendCtl(l) // tokens given back and not yet seen by the monitor
		}
		info[6] = int32(b2u(p.senders > 0 || p.localSenders > 0))
		info[7] = int32(b2u(p.pd != nil))
		info[8] = int32(b2u(p.ns != nil))
		info[9] = 0
		return abi.MACH_PORT_RECEIVE_STATUS_COUNT, abi.KERN_SUCCESS
	}
	return 0, abi.KERN_INVALID_ARGUMENT
}

// armedRequests counts the notification requests armed with p as their notify port. Each holds
// a send-once right to p (mach_port_request_notification copies the notify port in with
// MAKE_SEND_ONCE), which xnu counts in ip_sorights and so in mps_sorights. Called with sp.mu held.
func (s *space) armedRequests(p *port) int {
	n := 0
	for _, e := range s.entries {
		if e.dn != nil && e.dn.notify == p {
			n++
		}
		if r := e.recv; r != nil {
			if r.ns != nil && r.ns.notify == p {
				n++
			}
			if r.pd == p {
				n++
			}
		}
	}
	return n
}

// pset is a port set: an epoll fd over its members' epoll fds, and an eventfd that wakes
// receivers when the set is destroyed.
type pset struct {
	epfd    int
	evfd    int
	members map[uint64]*port
	dead    bool
	waiters int
}

func newPset() (*pset, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	return &pset{epfd: epfd, evfd: evfd, members: map[uint64]*port{}}, nil
}

func (ps *pset) closeFDs() {
	unix.Close(ps.epfd)
	unix.Close(ps.evfd)
}

func (ps *pset) add(p *port) int32 {
	if _, ok := ps.members[p.key]; ok {
		return abi.KERN_ALREADY_IN_SET
	}
	if p.openFDs() != nil {
		return abi.KERN_RESOURCE_SHORTAGE
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setEventKey(&ev, p.key)
	if err := unix.EpollCtl(ps.epfd, unix.EPOLL_CTL_ADD, p.epfd, &ev); err != nil {
		return abi.KERN_RESOURCE_SHORTAGE
	}
	ps.members[p.key] = p
	p.sets[ps] = struct{}{}
	return abi.KERN_SUCCESS
}

func (ps *pset) remove(p *port) int32 {
	if _, ok := ps.members[p.key]; !ok {
		return abi.KERN_NOT_IN_SET
	}
	unix.EpollCtl(ps.epfd, unix.EPOLL_CTL_DEL, p.epfd, nil)
	delete(ps.members, p.key)
	delete(p.sets, ps)
	return abi.KERN_SUCCESS
}

func (ps *pset) destroy() {
	for _, p := range ps.members {
		ps.remove(p)
	}
	ps.dead = true
	if ps.waiters > 0 {
		wake(ps.evfd)
		return
	}
	ps.closeFDs()
}

// receiveEntry returns the entry of a receive right. Called with sp.mu held.
func (s *space) receiveEntry(name uint32) (*entry, int32) {
	e := s.entries[name]
	switch {
	case e == nil:
		return nil, abi.KERN_INVALID_NAME
	case e.recv == nil:
		return nil, abi.KERN_INVALID_RIGHT
	}
	return e, abi.KERN_SUCCESS
}

func membership(name, set uint32, f func(ps *pset, p *port) int32) int32 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e, kr := sp.receiveEntry(name)
	if kr != abi.KERN_SUCCESS {
		return kr
	}
	var ps *pset
	if set != abi.MACH_PORT_NULL {
		se := sp.entries[set]
		if se == nil {
			return abi.KERN_INVALID_NAME
		}
		if se.pset == nil {
			return abi.KERN_INVALID_RIGHT
		}
		ps = se.pset
	}
	return f(ps, e.recv)
}

// InsertMember is mach_port_insert_member.
func InsertMember(name, set uint32) int32 {
	return membership(name, set, func(ps *pset, p *port) int32 {
		if ps == nil {
			return abi.KERN_INVALID_NAME
		}
		return ps.add(p)
	})
}

// ExtractMember is mach_port_extract_member.
func ExtractMember(name, set uint32) int32 {
	return membership(name, set, func(ps *pset, p *port) int32 {
		if ps == nil {
			return abi.KERN_INVALID_NAME
		}
		return ps.remove(p)
	})
}

// MoveMember is mach_port_move_member: leave every set, then join set (if not null).
func MoveMember(name, set uint32) int32 {
	return membership(name, set, func(ps *pset, p *port) int32 {
		was := len(p.sets)
		for other := range p.sets {
			if other != ps {
				other.remove(p)
			}
		}
		if ps == nil {
			if was == 0 {
				return abi.KERN_NOT_IN_SET
			}
			return abi.KERN_SUCCESS
		}
		if _, ok := ps.members[p.key]; ok {
			return abi.KERN_SUCCESS
		}
		return ps.add(p)
	})
}

// The monitor watches fds for hang-ups in one goroutine: channel read ends (every writer gone)
// and write ends with dead-name requests (the reader gone). It registers a dup of each fd, so a
// registration never depends on an fd number the caller may close and reuse.
var mon struct {
	once  sync.Once
	epfd  int
	mu    sync.Mutex
	next  uint64
	watch map[uint64]watch
}

type watch struct {
	fd int // the monitor's own dup
	f  func()
}

// startMonitor starts the monitor, once: with the first name of the space (newName), so that
// what stays for the process's life is there from the start, whether or not a channel ever
// needs watching (a process whose send rights are all local has none).
func startMonitor() {
	mon.once.Do(func() {
		mon.epfd, _ = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		mon.watch = map[uint64]watch{}
		go monitorLoop()
	})
}

func monitorAdd(fd int, events uint32, f func()) uint64 {
	startMonitor()
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	mon.mu.Lock()
	mon.next++
	key := mon.next
	mon.watch[key] = watch{fd: dup, f: f}
	mon.mu.Unlock()
	ev := unix.EpollEvent{Events: events | unix.EPOLLET}
	setEventKey(&ev, key)
	if err := unix.EpollCtl(mon.epfd, unix.EPOLL_CTL_ADD, dup, &ev); err != nil {
		monitorRemove(key)
		return 0
	}
	return key
}

// monitorRemove stops watching; it is a no-op for a watch that already fired.
func monitorRemove(key uint64) {
	if key == 0 {
		return
	}
	mon.mu.Lock()
	w, ok := mon.watch[key]
	delete(mon.watch, key)
	mon.mu.Unlock()
	if ok {
		unix.EpollCtl(mon.epfd, unix.EPOLL_CTL_DEL, w.fd, nil)
		unix.Close(w.fd)
	}
}

func monitorLoop() {
	events := make([]unix.EpollEvent, 64)
	for {
		n, err := unix.EpollWait(mon.epfd, events, -1)
		if err != nil {
			continue // EINTR
		}
		for _, ev := range events[:n] {
			key := eventKey(&ev)
			mon.mu.Lock()
			w, ok := mon.watch[key]
			delete(mon.watch, key)
			mon.mu.Unlock()
			if !ok {
				continue
			}
			unix.EpollCtl(mon.epfd, unix.EPOLL_CTL_DEL, w.fd, nil)
			unix.Close(w.fd)
			w.f()
		}
	}
}

// setEventKey and eventKey use the 64-bit data word of an epoll event (Fd and Pad in x/sys).
func setEventKey(ev *unix.EpollEvent, key uint64) {
	ev.Fd, ev.Pad = int32(uint32(key)), int32(uint32(key>>32))
}

func eventKey(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}
