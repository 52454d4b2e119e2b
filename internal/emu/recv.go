//go:build linux

package emu

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"golang.org/x/sys/unix"
)

// Receive is mach_msg's receive half on a receive right or port set. capacity is the room for
// the message (without trailer); size tells how large a queued message would be. With large, a
// message that does not fit stays queued and its size is returned with MACH_RCV_TOO_LARGE;
// without, it is destroyed. timeout < 0 blocks; cancelling ctx returns RcvCanceled. A port or
// set destroyed under the receive gives MACH_RCV_PORT_CHANGED, as xnu gives a thread blocked on
// it (ipc_mqueue_changed wakes it with THREAD_RESTART; ipc_mqueue_receive_results).
func Receive(ctx context.Context, name uint32, capacity int, size SizeFunc, large bool, timeout time.Duration, out *Msg) (int, int32) {
	dl := deadline{timeout: timeout} // started by the first wait (see deadline)
	// Blocking without a deadline, epoll_wait returns at once when a message is queued, so the
	// first non-blocking attempt (a recvmsg that would mostly fail) is skipped.
	blocking := ctx.Done() == nil && timeout < 0
	waitFirst := blocking
	if timeout != 0 {
		passScheduler() // before any lock, and before receiveDirect locks the thread
	}
	var waitedOn *port // the port this receive has waited on, if any
	hint := -1         // the channel read end the last wait found ready, if any
	var turnOf *port   // the port whose turn this receive holds (see passTurn), if any
	passTurn := func() {
		if turnOf != nil {
			turnOf.passTurn()
			turnOf = nil
		}
	}
	locked := false  // sp.mu is held at the top of the loop already (after a wait)
	var early *inMsg // a message readAfterWait read, not yet handed out
	earlyKR := int32(abi.MACH_MSG_SUCCESS)
	for {
		if !locked {
			sp.mu.Lock()
		}
		locked = false
		e := sp.entries[name]
		if waitedOn != nil && (e == nil || e.recv != waitedOn) {
			// The receive right left the name while this receive waited on it (moved in a
			// message): xnu restarts the wait and gives MACH_RCV_PORT_CHANGED.
			if early != nil {
				waitedOn.unget(early) // the message stays with the port
			}
			passTurn()
			sp.mu.Unlock()
			return 0, abi.MACH_RCV_PORT_CHANGED
		}
		if e == nil || (e.recv == nil && e.pset == nil) {
			passTurn()
			sp.mu.Unlock()
			return 0, abi.MACH_RCV_INVALID_NAME
		}
		p, ps := e.recv, e.pset
		// Receivers of replies from other processes (a port with lanes) beyond the first that
		// blocks a thread park in Go's poller (see crowded).
		park := blocking && p != nil && len(p.lanes) > 0 && crowded()
		// Another blocking receiver of the port has the turn to wait in the kernel (see
		// passTurn): look for a message first (the one with the turn may not have reached the
		// kernel yet, nor even a CPU), then wait in Go for the turn.
		queue := blocking && p != nil && !park && turnOf == nil && p.turn
		if queue {
			waitFirst = false
		}
		if early != nil && len(p.local) > 0 {
			// Messages queued here already (one a receive left at the head as too large, a
			// notification) come first: the one read after the wait goes behind them, still
			// ahead of the channel's next datagrams, which are read only once they are taken.
			p.local = append(p.local, early)
			p.wake()
			early = nil
		}
		var m *inMsg
		var from *port
		kr := int32(abi.MACH_MSG_SUCCESS)
		switch {
		case early != nil || earlyKR != abi.MACH_MSG_SUCCESS:
			m, from, kr = early, p, earlyKR
			early, earlyKR = nil, abi.MACH_MSG_SUCCESS
		case p != nil && blocking && !park && !queue && len(p.local) == 0 && len(p.chans) == 1 && !p.direct.active && directUsable():
			if p.poll != nil && p.waiters == 0 {
				p.unpoll() // crowded no more: see pollConn
			}
			if turnOf == nil {
				turnOf, p.turn = p, true
			}
			m, kr = sp.receiveDirect(p)
			from, waitedOn = p, p
			if p.dead {
				if m != nil {
					m.destroy()
					m.free()
				}
				if p.waiters == 0 {
					p.closeFDs()
				}
				passTurn()
				sp.mu.Unlock()
				return 0, abi.MACH_RCV_PORT_CHANGED
			}
			if e := sp.entries[name]; m != nil && (e == nil || e.recv != p) {
				p.unget(m) // the receive right moved meanwhile: the message stays with the port
				m = nil
			}
			if m == nil && kr == abi.MACH_MSG_SUCCESS {
				locked = true
				continue // interrupted, or the channel hung up: look again
			}
		case !waitFirst || (p != nil && len(p.local) > 0):
			m, from, kr = sp.tryReceive(p, ps, hint)
		}
		waitFirst = false
		if kr != abi.MACH_MSG_SUCCESS {
			passTurn()
			sp.mu.Unlock()
			return 0, kr
		}
		if m != nil {
			passTurn()
			ports, mems := m.counts()
			need := size(ports, mems, len(m.body))
			if need > capacity {
				if large {
					from.unget(m)
				} else {
					m.destroyUnreceived(from)
				}
				sp.mu.Unlock()
				return need, abi.MACH_RCV_TOO_LARGE
			}
			sp.copyout(m, from, out)
			sp.mu.Unlock()
			return need, abi.MACH_MSG_SUCCESS
		}
		if queue {
			ch := turnChans.Get().(chan struct{})
			p.turnQ = append(p.turnQ, ch)
			waitedOn = p
			sp.mu.Unlock()
			turnWaits.Add(1)
			<-ch
			turnWaits.Add(-1)
			turnChans.Put(ch)
			turnOf = p
			continue
		}
		// Nothing queued: wait on the port's (or set's) epoll fd.
		var waitFD int
		var poll syscall.RawConn
		crowds := true
		var pinned *rchan // the port's one channel, read once the wait ends (readAfterWait)
		if p != nil {
			if p.openFDs() != nil {
				passTurn()
				sp.mu.Unlock()
				return 0, abi.KERN_RESOURCE_SHORTAGE
			}
			if park {
				if poll = p.pollConn(); poll == nil {
					passTurn()
					sp.mu.Unlock()
					return 0, abi.KERN_RESOURCE_SHORTAGE
				}
			} else if p.poll != nil && p.waiters == 0 {
				p.unpoll() // crowded no more: see pollConn
			}
			if blocking && !park && turnOf == nil {
				turnOf, p.turn = p, true
			}
			waitFD = p.epfd
			p.waiters++
			waitedOn = p
			// A port without channels or lanes hears only from this process (local sends, the
			// kernel's notifications): its waiter does not crowd the others (see crowded).
			crowds = len(p.chans) > 0 || len(p.lanes) > 0
			if len(p.chans) == 1 {
				for _, rc := range p.chans {
					pinned = rc
				}
				pinned.readers++
			}
		} else {
			waitFD = ps.epfd
			ps.waiters++
		}
		sp.mu.Unlock()
		if poll != nil {
			kr, hint = waitPoller(poll), -1
		} else {
			kr, hint = wait(ctx, waitFD, &dl, crowds)
			if p == nil {
				hint = -1 // a set's events name its members, not channels
			}
		}
		var rx *rxBuf
		var n, oobn, flags int
		rerr := error(unix.EAGAIN)
		readAfter := false
		// Read the channel unless the wait says something else woke it (a local message's
		// eventfd); the poller does not say.
		if pinned != nil && kr == abi.MACH_MSG_SUCCESS && (hint == pinned.fd || poll != nil) {
			if h := readAfterWaitHook; h != nil {
				h(pinned)
			}
			pinned.reading.Add(1) // before the read: see settleSendLane
			readAfter = true
			if rx, n, oobn, flags, rerr = readAfterWait(pinned); rerr != nil {
				hint = -1 // nothing there: tryReceive need not read it again
			}
			if h := readAfterWaitDoneHook; h != nil {
				h(pinned)
			}
		}
		sp.mu.Lock()
		dead := false
		if pinned != nil {
			early, earlyKR = sp.endRead(p, pinned, readAfter, rx, n, oobn, flags, rerr)
		}
		if p != nil {
			p.waiters--
			if dead = p.dead; dead && p.waiters == 0 {
				p.closeFDs()
			}
			p.takeMoveWakes()
		} else {
			ps.waiters--
			if dead = ps.dead; dead && ps.waiters == 0 {
				ps.closeFDs()
			}
		}
		if dead || kr != abi.MACH_MSG_SUCCESS {
			if early != nil { // read after the wait ended: the port died meanwhile
				early.destroy()
				early.free()
				early = nil
			}
			passTurn()
			sp.mu.Unlock()
			if dead {
				return 0, abi.MACH_RCV_PORT_CHANGED
			}
			return 0, kr
		}
		locked = true // look again at once, without letting go of the lock in between
	}
}

func (m *inMsg) counts() (ports, mems int) {
	for _, r := range m.dg.descs {
		if r.kind == kindMemory {
			mems++
		} else {
			ports++
		}
	}
	return ports, mems
}

// tryReceive takes the next message without blocking; hint is a channel read end of p that a
// wait found ready (or -1), read first. Called with sp.mu held.
func (s *space) tryReceive(p *port, ps *pset, hint int) (*inMsg, *port, int32) {
	if p != nil {
		m, kr := s.tryPortHint(p, hint)
		return m, p, kr
	}
	var events [8]unix.EpollEvent
	n, err := unix.EpollWait(ps.epfd, events[:], 0)
	if err != nil {
		return nil, nil, abi.MACH_MSG_SUCCESS
	}
	for _, ev := range events[:n] {
		member := ps.members[eventKey(&ev)]
		if member == nil {
			continue
		}
		m, kr := s.tryPort(member)
		if m != nil || kr != abi.MACH_MSG_SUCCESS {
			return m, member, kr
		}
	}
	return nil, nil, abi.MACH_MSG_SUCCESS
}

// passTurn hands the port's turn to wait in the kernel, held by a blocking receiver that is
// done waiting there, to the receiver that has waited longest for it in Go, if any. Blocking
// receivers of one port beyond the first wait in Go, so that a message wakes one thread: with
// several threads in the kernel on one port (one in recvmsg, the others in epoll_wait), every
// message woke two, and the one that found nothing went back to sleep; on 2 cores, a server with
// 4 receive loops spent its time on those hand-offs. The receiver that takes the turn first
// looks for a message without waiting, then waits in the kernel in its turn; so does a receiver
// that finds the turn taken, before it waits for it: on a loaded machine the turn's holder may
// still wait for a CPU, and the receiver that has one should not idle behind it. Called with
// sp.mu held.
func (p *port) passTurn() {
	if len(p.turnQ) == 0 {
		p.turn = false
		return
	}
	popFront(&p.turnQ) <- struct{}{} // the turn stays held: it is the woken receiver's now
}

var turnWaits atomic.Int32

// TurnWaits is how many receives of this process wait in Go for their port's turn to wait in
// the kernel (see passTurn) right now, for tests.
func TurnWaits() int { return int(turnWaits.Load()) }

// turnChans are the channels receivers waiting for a port's turn wait on (buffered: passTurn
// never blocks).
var turnChans = sync.Pool{New: func() any { return make(chan struct{}, 1) }}

// directReadMax is how many channels a port may have for tryPort to read each directly.
const directReadMax = 2

// rxBuf is one receive's datagram and control buffers.
type rxBuf struct {
	data [maxDatagram + 1]byte
	oob  []byte
}

var rxBufs = sync.Pool{New: func() any { return &rxBuf{oob: make([]byte, oobSize)} }}

// oobSize fits the most fds a message carries plus the sender's credentials.
var oobSize = unix.CmsgSpace(maxFDs*4) + unix.CmsgSpace(unix.SizeofUcred)

// tryPort takes the next message of one port without blocking. Called with sp.mu held.
func (s *space) tryPort(p *port) (*inMsg, int32) { return s.tryPortHint(p, -1) }

// tryPortHint is tryPort reading first the channel whose read end is hint, which the wait
// just done found ready: without it, a port with two channels reads the other in vain half the
// time, and one with more asks epoll again which is ready.
func (s *space) tryPortHint(p *port, hint int) (*inMsg, int32) {
	m, kr := s.tryPortOnce(p, hint)
	if m == nil && kr == abi.MACH_MSG_SUCCESS && p.adoptedNow {
		// A channel joined the port during the look (a send lane's adopt): its message was
		// not looked for.
		p.adoptedNow = false
		m, kr = s.tryPortOnce(p, -1)
	}
	p.adoptedNow = false
	if m == nil && kr == abi.MACH_MSG_SUCCESS && len(p.local) > 0 {
		// Reading the channels queued a notification (a send-once channel's end of file, a
		// lane's word of a right destroyed): xnu had it queued before this receive began, so
		// a receive that does not wait (a deadline already past), and Peek, get it now.
		m = p.popLocal()
		p.unwake()
	}
	return m, kr
}

func (s *space) tryPortOnce(p *port, hint int) (*inMsg, int32) {
	if p.dead {
		return nil, abi.MACH_RCV_PORT_CHANGED
	}
	if len(p.local) > 0 {
		// A message sent inside this process keeps its queue slot and its send right until it is
		// received (copyout) or destroyed: one put back (MACH_RCV_LARGE, Peek) is still queued.
		m := p.popLocal()
		p.unwake()
		return m, abi.MACH_MSG_SUCCESS
	}
	if rc := p.chans[hint]; hint >= 0 && rc != nil {
		if m, kr := s.readChan(p, rc); m != nil || kr != abi.MACH_MSG_SUCCESS {
			return m, kr
		}
	}
	if len(p.chans) <= directReadMax {
		// With few channels, trying each is cheaper than asking epoll which is ready.
		for _, rc := range p.chans {
			m, kr := s.readChan(p, rc)
			if m != nil || kr != abi.MACH_MSG_SUCCESS {
				return m, kr
			}
		}
		return nil, abi.MACH_MSG_SUCCESS
	}
	var events [16]unix.EpollEvent
	n, err := unix.EpollWait(p.epfd, events[:], 0)
	if err != nil {
		return nil, abi.MACH_MSG_SUCCESS
	}
	for _, ev := range events[:n] {
		rc := p.chans[int(ev.Fd)]
		if rc == nil {
			continue
		}
		m, kr := s.readChan(p, rc)
		if m != nil || kr != abi.MACH_MSG_SUCCESS {
			return m, kr
		}
	}
	return nil, abi.MACH_MSG_SUCCESS
}

// recvmsg reads one datagram without allocating (x/sys's Recvmsg builds a Sockaddr each time).
// Without MSG_DONTWAIT in how, it blocks.
func recvmsg(fd int, p, oob []byte, how int) (n, oobn, flags int, err error) {
	var iov unix.Iovec
	iov.Base = &p[0]
	iov.SetLen(len(p))
	var msg unix.Msghdr
	msg.Iov = &iov
	msg.SetIovlen(1)
	msg.Control = &oob[0]
	msg.SetControllen(len(oob))
	r, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)),
		uintptr(how|unix.MSG_CMSG_CLOEXEC))
	if errno != 0 {
		return 0, 0, 0, errno
	}
	return int(r), int(msg.Controllen), int(msg.Flags), nil
}

// readChan reads one datagram from a channel, validating it completely; a malformed one is
// dropped with its fds and reported as RcvMalformed. Called with sp.mu held.
func (s *space) readChan(p *port, rc *rchan) (*inMsg, int32) {
	rx := rxBufs.Get().(*rxBuf)
	defer rxBufs.Put(rx)
	for {
		n, oobn, flags, err := recvmsg(rc.fd, rx.data[:], rx.oob, unix.MSG_DONTWAIT)
		if err != nil {
			return nil, abi.MACH_MSG_SUCCESS // EAGAIN: another receiver took it
		}
		m, kr := s.accept(p, rc, rx, n, oobn, flags)
		if kr != readOn || p.chans[rc.fd] != rc {
			if kr == readOn {
				kr = abi.MACH_MSG_SUCCESS
			}
			return m, kr
		}
	}
}

// readOn is accept's answer when it read no message but the channel may hold one: a lane's
// control datagram came, or an end of file was reported with a message still queued.
const readOn int32 = -0x7fff0100

// directTimeout bounds one blocking recvmsg of receiveDirect; the wait then starts again. A
// finite receive timeout is what makes a signal interrupt the call with EINTR rather than
// restart it; it also bounds how long a receiver whose wake-up signal was lost keeps waiting.
const directTimeout = 2 * time.Second

// directUsable reports whether receives may block in recvmsg.
func directUsable() bool { return !directOff.Load() }

var directWaits atomic.Uint64

// directOff turns receiveDirect off for the process: a signal went unanswered (SIGURG ignored
// or blocked), or a socket refused its receive timeout.
var directOff atomic.Bool

var pollerWaits atomic.Uint64

// parkedNow counts the receivers of this process parked in Go's poller (waitPoller) right now;
// lastPark is when the latest of them parked (since epoch).
var parkedNow atomic.Int32
var lastPark atomic.Int64

// procs is GOMAXPROCS, read again at each passScheduler (GOMAXPROCS(0) takes the scheduler's
// lock, too dear for every receive).
var procs atomic.Int32

func init() { procs.Store(int32(runtime.GOMAXPROCS(0))) }

// enterPark counts a receiver about to park in the poller; leavePark uncounts it.
func enterPark() {
	parkedNow.Add(1)
	lastPark.Store(int64(time.Since(epoch)))
}

func leavePark() { parkedNow.Add(-1) }

// PollerWaits counts the receives that parked in Go's poller (crowded), for tests.
func PollerWaits() uint64 { return pollerWaits.Load() }

// ThreadWaits is how many receives of this process block a thread right now, for tests.
func ThreadWaits() int { return int(threadWaits.Load()) }

// DirectWaits counts the receives that blocked in recvmsg (receiveDirect), for tests.
func DirectWaits() uint64 { return directWaits.Load() }

// directWaitHook, when set (by tests), runs in receiveDirect once sp.mu is released, before the
// receiver reads its channel.
var directWaitHook func()

// receiveDirect waits for a message of a port that has one channel and nothing queued by
// blocking in recvmsg on that channel: one system call where waiting in epoll takes two, as a
// plain socket would. What else the receiver must notice meanwhile (a queued notification, a
// new channel, the port's death) interrupts the call with a signal (see wakeDirect). It returns
// no message and success when it was interrupted or the channel hung up. Called with sp.mu
// held; returns with it held.
func (s *space) receiveDirect(p *port) (*inMsg, int32) {
	var rc *rchan
	for _, c := range p.chans {
		rc = c
	}
	if !rc.rcvTimeout {
		tv := unix.NsecToTimeval(directTimeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(rc.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			directOff.Store(true)
			return nil, abi.MACH_MSG_SUCCESS
		}
		rc.rcvTimeout = true
	}
	directWaits.Add(1)
	runtime.LockOSThread() // the thread that signals reach
	p.direct.active, p.direct.woken, p.direct.tid, p.direct.gen = true, false, unix.Gettid(), p.direct.gen+1
	p.direct.stop.Store(false)
	p.waiters++
	rc.readers++
	fd := rc.fd
	slot := enterThreadWait(true)
	poll := p.pollRec.next()
	s.mu.Unlock()
	if directWaitHook != nil {
		directWaitHook()
	}
	rx := rxBufs.Get().(*rxBuf)
	start := time.Since(epoch)
	var n, oobn, flags int
	err := error(unix.EAGAIN)
	if poll {
		n, oobn, flags, err = pollRecv(fd, rx, &p.direct.stop, start)
		pollDone()
	}
	hit := poll && err != unix.EAGAIN
	if err == unix.EAGAIN {
		if p.direct.stop.Load() {
			err = unix.EINTR // woken before it blocked (while it polled): look at the port again
		} else {
			n, oobn, flags, err = recvmsg(fd, rx.data[:], rx.oob, 0)
		}
	}
	leaveThreadWait(slot)
	waited := time.Since(epoch) - start
	s.mu.Lock()
	p.pollRec.done(poll, hit, waited)
	p.direct.active = false
	runtime.UnlockOSThread() // after active is cleared, so no late signal reaches another goroutine
	p.waiters--
	p.takeMoveWakes()
	return s.endRead(p, rc, false, rx, n, oobn, flags, err)
}

// endRead ends a read of rc done with sp.mu released (receiveDirect, readAfterWait): it makes a
// message of the datagram read, if any (err nil), and closes the channel if it was removed
// meanwhile and this was its last such reader. rx is the read's buffer (nil if it read
// nothing); afterWait says the read was readAfterWait's (counted in rc.reading). Called with
// sp.mu held.
func (s *space) endRead(p *port, rc *rchan, afterWait bool, rx *rxBuf, n, oobn, flags int, err error) (*inMsg, int32) {
	rc.readers--
	m, kr := (*inMsg)(nil), int32(abi.MACH_MSG_SUCCESS)
	if err == nil {
		if m, kr = s.accept(p, rc, rx, n, oobn, flags); kr == readOn {
			kr = abi.MACH_MSG_SUCCESS
		}
	}
	if rx != nil {
		rxBufs.Put(rx)
	}
	if afterWait && rc.reading.Add(-1) == 0 && rc.settleDeferred {
		rc.settleDeferred = false
		if m != nil && !p.dead {
			// The message read holds its send right until it is handed out, so it is queued
			// ahead of the no-senders that settling its lane may fire now (xnu releases the
			// destination's send right only at copy-out: ipc_kmsg_copyout_header).
			p.local = append(p.local, m)
			p.wake()
			m = nil
		}
		if l := rc.slane; l != nil {
			s.settleSendLane(l)
		}
	}
	if rc.closeDeferred && rc.readers == 0 {
		// Removed while this receiver read it (and shut down, so no sender got through since):
		// what is still queued dies with the channel, rights included.
		rc.closeDeferred = false
		s.drain(p, rc, func() bool { return false })
		unix.Close(rc.fd)
	}
	return m, kr
}

// readAfterWaitHook, when set (by tests), runs when a wait ended and readAfterWait is about to
// read channel rc, with sp.mu released; readAfterWaitDoneHook runs once it read, before sp.mu is
// taken.
var readAfterWaitHook, readAfterWaitDoneHook func(rc *rchan)

// readAfterWait reads the next datagram of rc, the one channel of a port whose wait just ended,
// without blocking and with sp.mu released: a reply wakes its receiver, and the system call
// that takes the reply out of the socket no longer holds the space lock, which every other
// requester of the process waits for (with 64 requester goroutines, the mutex profile put three
// quarters of their waits for it behind that receive). rc was pinned (readers) under the lock.
// After a wait in Go's poller too: there it once cost 16 requester goroutines 16% of their
// requests/s, while the first of them still blocked a thread beside the others parked; since all
// of them park (crowded), it gives 64 requester goroutines p99 1.54 against 2.05 ms and 166k
// against 150k requests/s (BenchmarkConcurrent goroutines64, medians of 8 interleaved runs).
func readAfterWait(rc *rchan) (rx *rxBuf, n, oobn, flags int, err error) {
	rx = rxBufs.Get().(*rxBuf)
	n, oobn, flags, err = recvmsg(rc.fd, rx.data[:], rx.oob, unix.MSG_DONTWAIT)
	return rx, n, oobn, flags, err
}

// accept validates a datagram read from a channel and makes it a message.
func (s *space) accept(p *port, rc *rchan, rx *rxBuf, n, oobn, flags int) (*inMsg, int32) {
	m := newInMsg()
	hasCreds, cerr := m.parseControl(rx.oob[:oobn])
	if n == 0 && oobn == 0 && closedPeer(rc.fd) {
		m.free()
		// End of file reads again and again: only the first reader of a channel still in the
		// port acts on it, and never while a receiver blocked in recvmsg on it may hold its
		// last message unprocessed (that receiver sees the end of file itself).
		if p.chans[rc.fd] == rc && rc.readers == 0 {
			s.channelEOF(p, rc)
		}
		return nil, abi.MACH_MSG_SUCCESS
	}
	if n == 0 && oobn == 0 && pending(rc.fd) {
		// End of file reported with a message still queued, sent just before its writer
		// closed the channel (see recvAfterEOF in handoff.go): a datagram on a channel carries
		// credentials (SO_PASSCRED), so nothing was read, or an empty datagram sent before the
		// channel was adopted, which is no message either. Read on.
		m.free()
		return nil, readOn
	}
	if rc.lane != nil && cerr == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) == 0 && n == laneCtlSize &&
		binary.LittleEndian.Uint32(rx.data[:]) == laneMagic {
		s.laneControl(p, rc.lane, rx.data[:n], m.fds)
		m.fds = m.fds[:0]
		m.free()
		return nil, readOn
	}
	if rc.slane != nil && cerr == nil && flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) == 0 && n == laneCtlSize &&
		binary.LittleEndian.Uint32(rx.data[:]) == laneMagic {
		// A send lane's adopt comes on its data channel (sendlane.go: sendAdopts).
		s.sendLaneAdoptOnData(rc.slane, rx.data[:n], m.fds)
		m.fds = m.fds[:0]
		m.free()
		return nil, readOn
	}
	bad := func() (*inMsg, int32) {
		m.destroy()
		m.free()
		if rc.lane != nil {
			// A lane carries many rights: a malformed datagram uses none of them (a forged or
			// reused token names none).
			return nil, RcvMalformed
		}
		if rc.sendOnce {
			rc.used = true
		} else if p.ctr != nil {
			p.ctr.release()
		}
		return nil, RcvMalformed
	}
	if cerr != nil || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || !hasCreds || n > maxDatagram {
		return bad()
	}
	m.destType = typePortSend
	if rc.sendOnce {
		m.destType = typePortSendOnce
	}
	if err := m.dg.decode(rx.data[:n], len(m.fds)); err != nil {
		return bad()
	}
	if rc.lane != nil {
		// Only a token this lane issued, once, names a right: anything else is a forgery.
		if _, ok := rc.lane.tokens[m.dg.laneToken]; !ok {
			return bad()
		}
	} else if m.dg.laneToken != 0 {
		return bad()
	}
	if m.dg.bodyLen > maxBody {
		return bad()
	}
	if err := m.checkMemory(); err != nil {
		return bad()
	}
	// Map out-of-line memory now, so a memfd that cannot be mapped is a malformed message, not a
	// descriptor with no memory behind it.
	for _, r := range m.dg.descs {
		if r.kind != kindMemory {
			continue
		}
		mp := mapping{size: r.size}
		if r.size > 0 {
			fds := m.fds[r.fd : int(r.fd)+int(r.parts)]
			if mp.addr = mapMemory(fds, r.size, r.copyIn); mp.addr == 0 {
				return bad()
			}
			for i, fd := range fds {
				unix.Close(fd)
				fds[i] = -1
			}
		}
		m.maps = append(m.maps, mp)
	}
	if m.dg.bodyFD >= 0 {
		m.body = slices.Grow(m.body[:0], int(m.dg.bodyLen))[:m.dg.bodyLen]
		if _, err := unix.Pread(m.fds[m.dg.bodyFD], m.body, 0); err != nil {
			return bad()
		}
		unix.Close(m.fds[m.dg.bodyFD])
		m.fds[m.dg.bodyFD] = -1
	} else {
		m.body = append(m.body[:0], m.dg.body...)
	}
	m.dg.body = nil
	for _, r := range m.dg.descs {
		// Only this process can move a receive right to itself: a token from anyone else, or one
		// that names nothing, is a forgery.
		if r.kind == kindReceive && (int(m.creds.Pid) != os.Getpid() || s.tokens[r.token] == nil) {
			return bad()
		}
	}
	m.validated = true
	if rc.lane != nil {
		delete(rc.lane.tokens, m.dg.laneToken)
	} else if rc.sendOnce {
		rc.used = true
		p.removeChan(rc) // a send-once channel is done after its one message
	} else {
		if p.ctr != nil {
			p.ctr.release()
		}
		if rc.hungup && !pending(rc.fd) {
			s.retire(p, rc) // its writers left earlier; this was the last message
		} else if l := rc.slane; l != nil && l.outstanding == 0 && rc.counted {
			// A send lane whose tokens all came back while this message was queued: it held
			// its send right until now.
			s.settleSendLane(l)
		}
	}
	return m, abi.MACH_MSG_SUCCESS
}

// closedPeer reports whether every writer of a read end is gone.
func closedPeer(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLRDHUP}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLRDHUP) != 0 && !pending(fd)
}

// channelEOF retires a channel whose writers are gone and whose queue is empty; a send-once
// channel that never carried its message becomes MACH_NOTIFY_SEND_ONCE.
func (s *space) channelEOF(p *port, rc *rchan) {
	rc.hungup = true
	if rc.lane != nil {
		p.laneEOF(rc.lane)
	} else if rc.sendOnce && !rc.used {
		rc.used = true
		p.inject(kernelMsg(abi.MACH_NOTIFY_SEND_ONCE, nil))
	}
	s.retire(p, rc)
}

// parseControl collects the fds and credentials of a datagram's control messages into m,
// without allocating. Every fd is collected, even from a malformed message, so none leaks.
func (m *inMsg) parseControl(oob []byte) (hasCreds bool, err error) {
	align := func(n int) int { return (n + 7) &^ 7 }
	hdr := unix.SizeofCmsghdr
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			return hasCreds, errMalformed
		}
		data := oob[align(hdr):l]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_RIGHTS:
			for i := 0; i+4 <= len(data); i += 4 {
				m.fds = append(m.fds, int(int32(binary.NativeEndian.Uint32(data[i:]))))
			}
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_CREDENTIALS && len(data) >= unix.SizeofUcred:
			m.creds = *(*unix.Ucred)(unsafe.Pointer(&data[0]))
			hasCreds = true
		}
		oob = oob[min(align(l), len(oob)):]
	}
	return hasCreds, nil
}

// checkMemory refuses memfds a hostile sender could change or shrink under the receiver, and
// marks the memory that the receiver copies in (copyIn) instead of mapping: that needs no seal
// or size check, since the copy is made at once and a short read fails it (copyReceived).
func (m *inMsg) checkMemory() error {
	// check refuses fd unless it holds size bytes that nobody can change or shrink, or it may be
	// copied in (copyable: a region of one memfd) and is (copiedIn). Only shmem and hugetlbfs
	// files report seals: a pipe, a socket, or a file whose reads could block is refused.
	check := func(fd int, size uint32, copyable bool) (copyIn bool, err error) {
		seals, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
		switch {
		case err != nil:
			return false, errMalformed
		case copyable && copiedIn(seals, size):
			return true, nil
		case seals&unix.F_SEAL_SHRINK == 0 || seals&(unix.F_SEAL_WRITE|unix.F_SEAL_FUTURE_WRITE) == 0:
			return false, errMalformed
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Size < int64(size) {
			return false, errMalformed
		}
		return false, nil
	}
	for d := range m.dg.descs {
		r := &m.dg.descs[d]
		if r.kind != kindMemory || r.size == 0 {
			continue
		}
		for i := range int(r.parts) {
			_, n := memPart(r.size, int(r.parts), i)
			copyIn, err := check(m.fds[int(r.fd)+i], n, r.parts == 1)
			if err != nil {
				return err
			}
			r.copyIn = copyIn
		}
	}
	if m.dg.bodyFD >= 0 {
		_, err := check(m.fds[m.dg.bodyFD], m.dg.bodyLen, false)
		return err
	}
	return nil
}

// copyout gives a message's rights names in this space and maps its memory. Called with sp.mu
// held.
func (s *space) copyout(m *inMsg, p *port, out *Msg) {
	// The message leaves the queue: its slot, and the send right it held (xnu's
	// ipc_kmsg_copyout_header releases the destination right, ipc_object_copyout_dest).
	m.dequeued()
	// The first message of a port has sequence number 0: ipc_mqueue_receive_on_thread hands
	// the thread imq_seqno++, and imq_seqno starts at 0.
	out.Seqno = p.seqno
	p.seqno++
	out.ID, out.Local, out.Remote, out.Voucher = m.dg.id, p.name, 0, 0
	out.Context = p.context
	out.Descs = out.Descs[:0]
	replyType := uint8(0)
	switch m.dg.reply.kind {
	case kindPort:
		out.Remote = s.copyoutRight(m, &m.dg.reply)
		replyType = m.dg.reply.typ
	case kindLane:
		out.Remote = s.copyoutLane(m, &m.dg.reply)
		replyType = m.dg.reply.typ
	case kindSendLane:
		out.Remote = s.copyoutSendLane(m, &m.dg.reply, p)
		replyType = m.dg.reply.typ
	}
	mi := 0
	for i := range m.dg.descs {
		r := &m.dg.descs[i]
		switch r.kind {
		case kindMemory:
			mp := m.maps[mi]
			mi++
			out.Descs = append(out.Descs, Desc{Memory: true, Addr: mp.addr, Size: r.size, Copy: r.typ,
				Dealloc: r.typ == abi.MACH_MSG_VIRTUAL_COPY})
		case kindPort:
			out.Descs = append(out.Descs, Desc{Name: s.copyoutRight(m, r), Disp: r.typ})
		case kindLane:
			out.Descs = append(out.Descs, Desc{Name: s.copyoutLane(m, r), Disp: r.typ})
		case kindSendLane:
			out.Descs = append(out.Descs, Desc{Name: s.copyoutSendLane(m, r, p), Disp: r.typ})
		case kindReceive:
			out.Descs = append(out.Descs, Desc{Name: s.copyoutReceive(r.token), Disp: typePortReceive})
		case kindNoPort:
			out.Descs = append(out.Descs, Desc{Name: r.size, Disp: r.typ})
		}
	}
	out.Bits = uint32(replyType) | uint32(m.destType)<<8
	if len(out.Descs) > 0 {
		out.Bits |= abi.MACH_MSGH_BITS_COMPLEX
	}
	out.Body = append(out.Body[:0], m.body...)
	m.maps = m.maps[:0] // the caller owns the mappings now
	defer m.free()
	out.Sender, out.Audit = m.tokens()
}

// tokens are the sender's security and audit tokens, as the trailer carries them.
func (m *inMsg) tokens() (sender [2]uint32, audit [8]uint32) {
	if m.kernel {
		return [2]uint32{0, 1}, [8]uint32{} // KERNEL_SECURITY_TOKEN, KERNEL_AUDIT_TOKEN
	}
	c := m.creds
	return [2]uint32{c.Uid, c.Gid}, [8]uint32{c.Uid, c.Uid, c.Gid, c.Uid, c.Gid, uint32(c.Pid), 0, 0}
}

// copyoutRight names a send or send-once right; send rights to a port this space already names
// coalesce under that name. A right whose port died in flight arrives as MACH_PORT_DEAD.
func (s *space) copyoutRight(m *inMsg, r *record) uint32 {
	if r.ch != nil {
		c := r.ch
		r.ch = nil
		return s.copyoutLocal(c, r.typ)
	}
	fd := m.fds[r.fd]
	m.fds[r.fd] = -1
	cfd := -1
	if r.counterFD >= 0 {
		cfd = m.fds[r.counterFD]
		m.fds[r.counterFD] = -1
	}
	if r.typ == typePortSend {
		if n, ok := s.byPort[r.id]; ok {
			if e := s.entries[n]; e != nil && (e.send != nil || e.recv != nil) {
				// A port this space already names: one more user reference, and the fds that
				// came are not needed. For a port whose receive right is here, the channel is
				// always made here too, never taken from a peer that merely claims the port's
				// id.
				unix.Close(fd)
				unix.Close(cfd)
				if e.send == nil {
					e.send = e.recv.newLocalSend()
				}
				if e.sendRefs < urefsMax {
					e.sendRefs++
				}
				return e.name
			}
		}
		if p := s.travelling(r.id); p != nil {
			// The port's receive right travels inside this process: the send right is local
			// again, as its receive right will be named here (copyoutReceive joins this name),
			// so that messages through the name, whatever their disposition, share the port's
			// one queue in order.
			unix.Close(fd)
			unix.Close(cfd)
			e := s.newName()
			e.send, e.sendRefs, e.id = p.newLocalSend(), 1, r.id
			s.byPort[r.id] = e.name
			return e.name
		}
	}
	c := &sendChan{fd: fd, id: r.id, sendOnce: r.typ == typePortSendOnce, refs: 1}
	if cfd >= 0 {
		c.ctr, c.ownsCtr = newCounterRef(cfd), true // mapped when first used to send
	}
	if c.dead() {
		c.put()
		return abi.MACH_PORT_DEAD
	}
	if c.sendOnce {
		e := s.newName()
		e.sonce, e.id = c, r.id
		return e.name
	}
	e := s.newName()
	e.send, e.sendRefs, e.id = c, 1, r.id
	s.byPort[r.id] = e.name
	return e.name
}

// copyoutLocal names a right that came in a message sent inside this process (its reference
// moves to the name); send rights coalesce as in copyoutRight.
func (s *space) copyoutLocal(c *sendChan, typ uint8) uint32 {
	if c.dead() {
		c.put()
		return abi.MACH_PORT_DEAD
	}
	if typ == typePortSendOnce {
		e := s.newName()
		e.sonce, e.id = c, c.id
		return e.name
	}
	if n, ok := s.byPort[c.id]; ok {
		if e := s.entries[n]; e != nil && (e.send != nil || e.recv != nil) {
			if e.send == nil {
				e.send = c
			} else {
				c.put()
			}
			if e.sendRefs < urefsMax {
				e.sendRefs++
			}
			return e.name
		}
	}
	e := s.newName()
	e.send, e.sendRefs, e.id = c, 1, c.id
	s.byPort[c.id] = e.name
	return e.name
}

// travelling returns the port with the given id whose receive right travels inside this process
// (moved in a message, or parked for a port-destroyed notification), if any. Called with sp.mu
// held.
func (s *space) travelling(id portID) *port {
	for _, p := range s.tokens {
		if p.id == id && !p.dead {
			return p
		}
	}
	return nil
}

// copyoutReceive names a receive right that moved inside this process.
func (s *space) copyoutReceive(tok uint64) uint32 {
	p := s.tokens[tok]
	delete(s.tokens, tok)
	if p == nil || p.dead {
		return abi.MACH_PORT_DEAD // destroyed while it travelled
	}
	if n, ok := s.byPort[p.id]; ok {
		if e := s.entries[n]; e != nil && e.recv == nil {
			e.recv, p.name = p, e.name
			return e.name
		}
	}
	e := s.newName()
	e.recv, e.id, p.name = p, p.id, e.name
	s.byPort[p.id] = e.name
	return e.name
}

// ready reports whether an epoll fd has events, without consuming them.
func ready(fd uintptr) bool {
	var ev [1]unix.EpollEvent
	n, _ := unix.EpollWait(int(fd), ev[:], 0)
	return n > 0
}

// wait waits until the epoll fd is readable, the deadline passes or ctx is canceled. It blocks
// the thread in epoll_wait on the port itself, as mach_msg blocks it on Darwin: measured against
// parking in Go's poller, this halves the median cross-process round trip on a 2-core machine
// and avoids its slow wake-ups. Under load it matters more: a process whose receives park in the
// poller, between the system calls of its sends, has every P idle in between, so Go's sysmon
// sleeps deeply, and each following system call (such as a send waiting for room in a queue)
// wakes it to poll every 20 µs again; with 64 client processes (BenchmarkLoad in cfmessageport)
// that made four in five of the machine's context switches. A canceled context interrupts the
// wait with SIGURG, as wakeDirect does. Where that signal goes unanswered (directOff), a wait
// that can be canceled parks the goroutine on a waiter epoll (in Go's poller) that watches fd,
// whose read deadline carries both the deadline and cancellation.
func wait(ctx context.Context, fd int, dl *deadline, crowds bool) (int32, int) {
	if ctx.Done() == nil || directUsable() {
		return waitThread(ctx, fd, dl, crowds)
	}
	return waitParked(ctx, fd, dl.when()), -1
}

// waitParked is wait parking the goroutine on a waiter epoll in Go's poller.
func waitParked(ctx context.Context, fd int, until time.Time) int32 {
	w, err := getWaiter()
	if err != nil {
		return abi.MACH_RCV_TIMED_OUT
	}
	defer putWaiter(w)
	if err := unix.EpollCtl(w.fd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		return abi.MACH_RCV_PORT_CHANGED
	}
	defer unix.EpollCtl(w.fd, unix.EPOLL_CTL_DEL, fd, nil)
	w.file.SetReadDeadline(until) // the zero time when there is none
	if ctx.Done() != nil {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() { w.file.SetReadDeadline(time.Unix(1, 0)); close(fired) })
		defer func() {
			if !stop() {
				<-fired // never hand the waiter on while a cancellation may still touch it
			}
		}()
	}
	rc, err := w.file.SyscallConn()
	if err != nil {
		return abi.MACH_RCV_PORT_CHANGED
	}
	switch err := rc.Read(ready); {
	case err == nil:
		return abi.MACH_MSG_SUCCESS
	case errors.Is(err, os.ErrDeadlineExceeded):
		if ctx.Err() != nil {
			return RcvCanceled
		}
		return abi.MACH_RCV_TIMED_OUT
	}
	return abi.MACH_RCV_PORT_CHANGED
}

// waitThread is wait blocking the thread in epoll_wait. It also returns the fd of the event it
// got (the epoll data of a port's channels), or -1.
// crowds tells whether the wait counts for crowded.
func waitThread(ctx context.Context, fd int, dl *deadline, crowds bool) (int32, int) {
	defer leaveThreadWait(enterThreadWait(crowds))
	if ctx.Done() != nil {
		runtime.LockOSThread() // the thread the signal reaches
		defer runtime.UnlockOSThread()
		it := &interrupter{tid: unix.Gettid()}
		stop := context.AfterFunc(ctx, it.interrupt)
		defer func() {
			if !stop() {
				it.end() // interrupt runs: it sends no signal after this
			}
		}()
	}
	var ev [1]unix.EpollEvent
	for {
		if ctx.Err() != nil {
			return RcvCanceled, -1
		}
		ms := -1
		if dl.timeout >= 0 {
			left := dl.left()
			if left <= 0 {
				return abi.MACH_RCV_TIMED_OUT, -1
			}
			ms = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		if ctx.Done() != nil && (ms < 0 || ms > int(directTimeout/time.Millisecond)) {
			ms = int(directTimeout / time.Millisecond) // looks at ctx again if a signal was lost
		}
		n, err := unix.EpollWait(fd, ev[:], ms)
		if n > 0 {
			return abi.MACH_MSG_SUCCESS, int(ev[0].Fd)
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			return abi.MACH_RCV_PORT_CHANGED, -1
		}
	}
}

// schedulerPassEvery is how long, at most, this process's receives go without passing through
// Go's scheduler (see passScheduler): inside the 10 ms after which sysmon takes a goroutine for
// one that runs too long (forcePreemptNS in runtime/proc.go), with room for a wait of 5 ms after
// the pass. A pass costs about two context switches (Gosched wakes an idle P's thread, which
// finds nothing to do): with 64 requester processes, each making a request about every 0.8 ms,
// passes every 2 ms cost 0.2 switches per request more than every 5 ms, and 8% of the requests
// per second (fixed 60,000 requests: 65k against 71k, twice).
const schedulerPassEvery = 5 * time.Millisecond

// lastSchedulerPass is when a receive of this process last passed through the scheduler (since
// epoch, in ns).
var lastSchedulerPass atomic.Int64

// passScheduler lets the goroutine pass through Go's scheduler (runtime.Gosched) if no receive
// of this process has for schedulerPassEvery. A receiver that blocks its thread in a system call
// (waitThread, receiveDirect) does not pass through the scheduler, so a goroutine that only sends
// and receives never does. Go's sysmon reads that as a goroutine running for too long: once a P's
// schedtick has not moved for 10 ms, retake (runtime/proc.go) preempts the goroutine with SIGURG,
// which interrupts receiveDirect's recvmsg, takes the P from the system call, and counts as work
// done, so sysmon keeps waking every 20 µs instead of backing off to 10 ms. In
// BenchmarkConcurrent that made a requester process's threads switch about 3 times per request
// at 64 requester processes (1.9 at 16), and the extra switches were the tail: with a pass every
// 2 ms, p99 1.63 ms against 3.62 ms and 85k against 62k requests/s (processes64, medians of 3
// interleaved runs; processes16: 0.40 against 1.08 ms, 98k against 70k). One
// timestamp serves the whole process: with goroutines of it blocking threads on several Ps at
// once, the one that passes may not be the one whose P sysmon reads (receivers beyond the first
// park in the poller or wait for a turn, which pass through the scheduler anyway).
func passScheduler() {
	now := int64(time.Since(epoch))
	if last := lastSchedulerPass.Load(); now-last >= int64(schedulerPassEvery) && lastSchedulerPass.CompareAndSwap(last, now) {
		runtime.Gosched()
		procs.Store(int32(runtime.GOMAXPROCS(0)))
	}
}

// threadWaits counts the receivers of this process blocked in a system call (receiveDirect,
// waitThread); crowdWaits counts those of them that crowd the others (see crowded), and
// threadWaitStart holds when each of the first of these began (since epoch, +1; 0 for a free
// slot).
var (
	threadWaits     atomic.Int32
	crowdWaits      atomic.Int32
	threadWaitStart [16]atomic.Int64
	epoch           = time.Now()
)

// youngWait is how long a receiver blocked in a system call counts as busy for crowded: a
// receiver that has waited longer (a server with nothing to do, a watcher of rare
// notifications) wakes too seldom to cost the others anything. It must exceed the waits of busy
// requesters by far: with 1 ms, 64 requester goroutines under load waited longer than that,
// stopped counting, and each let one more receiver block a thread, back to the unfair service
// the parking avoids (BenchmarkConcurrent goroutines64, p50 30 µs beside a p99 of 15 ms). In
// ns; tests change it.
var youngWait atomic.Int64

func init() { youngWait.Store(int64(100 * time.Millisecond)) }

// Slots enterThreadWait returns besides threadWaitStart's indexes.
const (
	slotNone  = -1 // a crowding wait that found every slot taken
	slotQuiet = -2 // a wait that does not crowd
)

// enterThreadWait counts a receiver about to block its thread (as crowding the others when
// crowds); leaveThreadWait(slot) uncounts it.
func enterThreadWait(crowds bool) int {
	threadWaits.Add(1)
	if !crowds {
		return slotQuiet
	}
	crowdWaits.Add(1)
	now := int64(time.Since(epoch)) + 1
	for i := range threadWaitStart {
		if threadWaitStart[i].CompareAndSwap(0, now) {
			return i
		}
	}
	return slotNone
}

func leaveThreadWait(slot int) {
	if slot >= 0 {
		threadWaitStart[slot].Store(0)
	}
	if slot != slotQuiet {
		crowdWaits.Add(-1)
	}
	threadWaits.Add(-1)
}

// crowded reports whether a blocking receive should park its goroutine in Go's poller rather
// than block its thread. Blocking the thread is what makes one receiver fast (see wait), but a
// thread blocked in a system call keeps its P until sysmon takes it back, and a receiver whose
// thread wakes without a P waits for one (with the thread locked for receiveDirect's signals,
// each such wake is a hand-off between two threads): with 16 requester goroutines in one
// process, each blocking a thread, some requesters were served again and again while others
// waited tens of milliseconds (BenchmarkConcurrent's p99). So while another receiver of the
// process has blocked its thread for less than youngWait, a receive on a reply port (one with
// lanes: its messages come from other processes) parks in the poller, which wakes only the
// goroutine whose port is ready, on a P that is free. A single requester and a server with one
// receiver keep the thread path, also beside receivers that idle for long. So do receivers of
// ports without lanes, whose senders may be in this process: when this process is itself busy,
// the runtime polls only once it runs out of other work, and a server and 64 requesters in one
// process (cfmessageport BenchmarkServerConcurrency inproc) made half the requests per second.
// A receiver blocked on a port with neither channels nor lanes (a watcher of notifications, such
// as cfmessageport's death watch) crowds nobody: only this process can wake it, and it counted
// as young for youngWait after it began, which sent a lone requester to the poller (20-35%
// slower round trips for 100 ms after cfmessageport's Dial).
//
// Nor does that first receiver block its thread while GOMAXPROCS or more receivers of the process
// are parked in the poller, the latest of them parked less than youngWait ago: their wake-ups
// keep every P busy, and a receiver whose thread wakes from its system call then finds none
// free and waits behind them. With 16 requester goroutines, parking them all gave p99 0.39
// against 0.55 ms and 168k against 146k requests/s (BenchmarkConcurrent goroutines16, medians of
// 3 interleaved runs); it is also what lets readAfterWait pay after a wait in the poller.
func crowded() bool {
	if parkedNow.Load() >= procs.Load() && int64(time.Since(epoch))-lastPark.Load() < youngWait.Load() {
		return true
	}
	n := crowdWaits.Load()
	if n == 0 {
		return false
	}
	if int(n) > len(threadWaitStart) {
		return true
	}
	young := int64(time.Since(epoch)) + 1 - youngWait.Load()
	for i := range threadWaitStart {
		if t := threadWaitStart[i].Load(); t != 0 && t > young {
			return true
		}
	}
	return false
}

// waitPoller parks the goroutine in Go's poller until the port's epoll fd (behind rc) is
// readable. Receivers parked on one port wait one at a time (the file's read lock), so a
// message wakes one of them, not all. Once parked, the first wake-up ends the wait without
// asking epoll again: the fd is edge-triggered in the poller, so a wake-up means something came
// (at worst something another receiver took, and the receive looks and parks again), and a
// message that comes after the look that preceded parking wakes it. That look must follow
// RawRead's reset of the poller's readiness, hence inside the check, not before the call.
func waitPoller(rc syscall.RawConn) int32 {
	pollerWaits.Add(1)
	enterPark()
	defer leavePark()
	w := pollWaits.Get().(*pollWait)
	defer pollWaits.Put(w)
	w.looked = false
	if err := rc.Read(w.check); err != nil {
		return abi.MACH_RCV_PORT_CHANGED // closed: the port died
	}
	return abi.MACH_MSG_SUCCESS
}

// pollWait is waitPoller's check: ready the first time, then true (woken).
type pollWait struct {
	looked bool
	check  func(uintptr) bool // w.look, bound once (a method value made per wait would allocate)
}

var pollWaits = sync.Pool{New: func() any {
	w := &pollWait{}
	w.check = w.look
	return w
}}

func (w *pollWait) look(fd uintptr) bool {
	if w.looked {
		return true
	}
	w.looked = true
	return ready(fd)
}

// pollConn returns the port's epoll fd in Go's poller (a dup of it), putting it there the first
// time (nil if it cannot). It stays there while receivers park, and leaves when a receiver
// blocks its thread on the port again with nobody parked (unpoll): in the poller, every message
// to the port wakes an idle thread of the runtime besides the receiver, which doubled a lone
// requester's round trip after its first receives had parked. Called with sp.mu held, epfd open.
func (p *port) pollConn() syscall.RawConn {
	if p.poll == nil {
		fd, err := unix.FcntlInt(uintptr(p.epfd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil
		}
		f := pollable(fd)
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			return nil
		}
		p.poll, p.pollRC = f, rc
	}
	return p.pollRC
}

// unpoll takes the port's epoll fd out of Go's poller. Called with sp.mu held, no receiver
// parked.
func (p *port) unpoll() {
	p.poll.Close()
	p.poll, p.pollRC = nil, nil
}

// interrupter interrupts a thread blocked in a system call when a context is canceled: it sends
// SIGURG until the wait is over, since a signal that arrives just before the thread enters the
// call is lost. A signal that goes unanswered too long turns such waits off (directOff).
type interrupter struct {
	tid  int
	mu   sync.Mutex
	over bool
}

func (it *interrupter) interrupt() {
	delay := directResignal
	for tries := 0; ; tries++ {
		it.mu.Lock()
		if it.over {
			it.mu.Unlock()
			return
		}
		if tries > directResignals && sigurgDeaf(it.tid) {
			directOff.Store(true) // the wait itself returns within directTimeout
			it.mu.Unlock()
			return
		}
		unix.Tgkill(os.Getpid(), it.tid, unix.SIGURG)
		it.mu.Unlock()
		time.Sleep(delay)
		delay *= 2
	}
}

// end marks the wait over.
func (it *interrupter) end() {
	it.mu.Lock()
	it.over = true
	it.mu.Unlock()
}

// waiter is an epoll fd in Go's poller, made for one wait that can be canceled where signals
// cannot interrupt a thread (not pooled: a process holds no fds beyond its ports).
type waiter struct {
	fd   int
	file *os.File
}

func getWaiter() (*waiter, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	return &waiter{fd: fd, file: pollable(fd)}, nil
}

func putWaiter(w *waiter) { w.file.Close() }

// mapping is out-of-line memory mapped for a received message.
type mapping struct {
	addr uintptr
	size uint32
}

// maxBody is the largest inline body a message may declare (ipc_kmsg_max_body_space).
const maxBody = 64<<20*3/4 - 68

// mapMemory maps out-of-line memfds copy-on-write (Mach's virtual copy), back to back: the
// receiver may write its pages without touching the sender's; one memfd to be copied in
// (copyIn: see copiedIn) is copied instead (copyReceived). The mapping is not populated:
// reading it already maps 16 pages per fault (the kernel's fault-around, fault_around_bytes
// 64 KiB, for read faults on a file mapping), and populating it up front, with
// MADV_POPULATE_READ or a read-only MAP_POPULATE, measured slower on this project's 6.18 kernel
// at 64 KiB and 1 MiB, and costs a receiver that never reads its memory.
func mapMemory(fds []int, size uint32, copyIn bool) uintptr {
	mmap := func(addr uintptr, n uint32, flags, fd int) (uintptr, bool) {
		prot := unix.PROT_READ | unix.PROT_WRITE
		if fd < 0 {
			prot = unix.PROT_NONE
		}
		a, _, errno := unix.Syscall6(unix.SYS_MMAP, addr, uintptr(n), uintptr(prot), uintptr(flags), uintptr(fd), 0)
		return a, errno == 0
	}
	if len(fds) == 1 {
		if copyIn {
			return copyReceived(fds[0], size)
		}
		addr, _ := mmap(0, size, unix.MAP_PRIVATE, fds[0])
		return addr
	}
	// Reserve the whole range (no access, no commit charge), then map each part over its place.
	base, ok := mmap(0, size, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE, -1)
	if !ok {
		return 0
	}
	for i, fd := range fds {
		off, n := memPart(size, len(fds), i)
		if _, ok := mmap(base+uintptr(off), n, unix.MAP_PRIVATE|unix.MAP_FIXED, fd); !ok {
			unix.Syscall(unix.SYS_MUNMAP, base, uintptr(size), 0)
			return 0
		}
	}
	return base
}

// Regions from VMAllocate are shared mappings of a memfd, so that sending one with deallocate
// hands the receiver the memfd, without a copy, as Mach moves the pages of a region sent with
// deallocate=TRUE. The memfds are recycled (regionpool.go).
var regions struct {
	sync.Mutex
	byAddr map[uintptr]region
}

type region struct {
	slot *regionSlot
	size int
}

// VMAllocate is vm_allocate: zeroed memory outside the Go heap, backed by a memfd. Its pages are
// allocated and mapped writable at once: a region is made to be filled, and that costs less
// than a fault per page on fresh memfd pages. A recycled memfd's pages are cheaper still.
func VMAllocate(size int) (uintptr, int32) {
	s := takeRegionSlot(size)
	if s == nil {
		var kr int32
		if s, kr = newRegionSlot(size); kr != abi.KERN_SUCCESS {
			return 0, kr
		}
	}
	regions.Lock()
	if regions.byAddr == nil {
		regions.byAddr = map[uintptr]region{}
	}
	regions.byAddr[s.addr] = region{slot: s, size: size}
	regions.Unlock()
	return s.addr, abi.KERN_SUCCESS
}

// VMDeallocate is vm_deallocate.
func VMDeallocate(addr uintptr, size int) int32 {
	if size == 0 {
		return abi.KERN_SUCCESS
	}
	// Forget the region before giving its memfd back: VMAllocate may hand out the same address.
	regions.Lock()
	r, ok := regions.byAddr[addr]
	if ok && r.size == size {
		delete(regions.byAddr, addr)
	}
	regions.Unlock()
	if ok && r.size == size {
		if freeRegionSlot(r.slot) != 0 {
			return abi.KERN_INVALID_ADDRESS
		}
		return abi.KERN_SUCCESS
	}
	forgetRegionsIn(addr, size)
	if unmap(addr, size) != 0 {
		return abi.KERN_INVALID_ADDRESS
	}
	return abi.KERN_SUCCESS
}

// unmap unmaps [addr, addr+size). Freeing the pages of a large memfd mapping costs about as much
// as allocating them, so large ranges are unmapped in parallel parts, as they were filled.
func unmap(addr uintptr, size int) unix.Errno {
	if done, errno := releaseCopy(addr, size); done {
		return errno
	}
	if size < splitMin || size > math.MaxUint32 || runtime.GOMAXPROCS(0) == 1 {
		_, _, errno := unix.Syscall(unix.SYS_MUNMAP, addr, uintptr(size), 0)
		return errno
	}
	parts := min(runtime.GOMAXPROCS(0), maxMemParts)
	errs := make([]unix.Errno, parts)
	var wg sync.WaitGroup
	for i := range parts {
		off, n := memPart(uint32(size), parts, i)
		wg.Go(func() { _, _, errs[i] = unix.Syscall(unix.SYS_MUNMAP, addr+uintptr(off), uintptr(n), 0) })
	}
	wg.Wait()
	for _, e := range errs {
		if e != 0 {
			// Leave nothing half unmapped: try the whole range at once.
			_, _, errno := unix.Syscall(unix.SYS_MUNMAP, addr, uintptr(size), 0)
			return errno
		}
	}
	return 0
}

// isRegion reports whether [addr, addr+size) is a whole region from VMAllocate.
func isRegion(addr uintptr, size uint32) bool {
	regions.Lock()
	r, ok := regions.byAddr[addr]
	regions.Unlock()
	return ok && r.size == int(size)
}

// donatable returns a new read-only open file description of the memfd behind a whole region
// from VMAllocate, locked for reading until the receiver lets go of it (regionpool.go). The
// region stays the sender's until the send succeeds, so a send that fails leaves it as it was.
func donatable(addr uintptr, size uint32) (int, bool) {
	regions.Lock()
	r, ok := regions.byAddr[addr]
	regions.Unlock()
	if !ok || r.size != int(size) {
		return -1, false
	}
	fd, err := reopenLocked(r.slot.fd)
	return fd, err == nil
}
