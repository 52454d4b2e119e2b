//go:build linux

package emu

import (
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"golang.org/x/sys/unix"
)

// Codes the emulation returns beside Mach's own (outside the mach_msg_return_t space).
const (
	// RcvCanceled: the receive's context was canceled.
	RcvCanceled int32 = -0x7fff0001
	// SendMoveReceiveRemote: a receive right cannot move to another process on Linux.
	SendMoveReceiveRemote int32 = -0x7fff0002
	// RcvMalformed: a peer wrote bytes that are not a message; they were dropped.
	RcvMalformed int32 = -0x7fff0003
)

// Msg is a message crossing the emulation's API, in Mach's terms: names and dispositions on the
// way in, names and received right types on the way out.
type Msg struct {
	Bits    uint32
	Remote  uint32
	Local   uint32
	Voucher uint32
	ID      int32
	Descs   []Desc
	Body    []byte
	Seqno   uint32
	Sender  [2]uint32
	Audit   [8]uint32
	Context uint64 // the receiving port's context (a trailer's msgh_context)
}

// Desc is a port or out-of-line memory descriptor.
type Desc struct {
	Memory  bool
	Data    []byte // memory to send (Addr is where it lives, for Dealloc)
	Name    uint32
	Disp    uint8
	Addr    uintptr
	Size    uint32
	Dealloc bool
	Copy    uint8
}

// inMsg is a message queued for a receiver, still holding raw fds until copyout gives them names.
type inMsg struct {
	dg        datagram
	validated bool      // every record checked: tokens in it are this process's own
	maps      []mapping // out-of-line memory mapped at validation, in descriptor order
	fds       []int
	body      []byte
	destType  uint8
	kernel    bool
	creds     unix.Ucred
	// A message sent inside this process through a local send right holds that right (hold)
	// and, when counted, a slot in the port's queue, until it leaves the queue (dequeued).
	hold    *sendChan
	counted bool
}

var inMsgs = sync.Pool{New: func() any { return new(inMsg) }}

// newInMsg returns a cleared message whose buffers keep their capacity.
func newInMsg() *inMsg {
	m := inMsgs.Get().(*inMsg)
	m.dg = datagram{descs: m.dg.descs[:0]}
	m.fds, m.body = m.fds[:0], m.body[:0]
	m.destType, m.kernel, m.creds, m.validated = 0, false, unix.Ucred{}, false
	m.maps = m.maps[:0]
	m.hold, m.counted = nil, false
	return m
}

// free returns a message whose resources were copied out or destroyed.
func (m *inMsg) free() { inMsgs.Put(m) }

// kernelMsg makes a notification, as the kernel would send it (all-zero audit token).
func kernelMsg(id int32, body []byte) *inMsg {
	m := newInMsg()
	m.kernel, m.destType, m.validated = true, typePortSendOnce, true
	m.dg.id, m.dg.bodyFD, m.dg.reply = id, -1, record{fd: -1, counterFD: -1}
	m.body = append(m.body, body...)
	return m
}

// dequeued releases what a message sent inside this process held while it was queued: its
// queue slot and its destination's send right, as a message read off a channel frees them.
// Called with sp.mu held.
func (m *inMsg) dequeued() {
	if m.hold == nil {
		return
	}
	if m.counted {
		m.hold.local.releaseSlot()
		m.counted = false
	}
	m.hold.put()
	m.hold = nil
}

// discard frees a message deliverLocal made for a send that failed: it holds only its memory.
// Called with sp.mu held.
func (m *inMsg) discard() {
	m.dg.descs, m.dg.reply = m.dg.descs[:0], record{fd: -1, counterFD: -1}
	m.counted = false // deliverLocal takes a slot only for a send that succeeds
	m.destroy()
	m.free()
}

// destroyUnreceived destroys a message a receive took off p's queue but could not take
// (MACH_RCV_TOO_LARGE without MACH_RCV_LARGE), with its destination right: a send-once right
// destroyed so, whether it came through the local queue, a channel or a lane, sends p
// MACH_NOTIFY_SEND_ONCE, kernel notifications included (xnu's ipc_kmsg_clean,
// ipc_object_destroy_dest: ipc_notify_send_once). Called with sp.mu held.
func (m *inMsg) destroyUnreceived(p *port) {
	once := m.destType == typePortSendOnce
	m.destroy()
	m.free()
	if once {
		p.inject(kernelMsg(abi.MACH_NOTIFY_SEND_ONCE, nil)) // a dead port destroys it
	}
}

// destroy releases everything a queued message holds (mach_msg_destroy before copyout).
func (m *inMsg) destroy() {
	m.dequeued()
	if c := m.dg.reply.ch; c != nil {
		m.dg.reply.ch = nil
		c.put()
	}
	for i := range m.dg.descs {
		if c := m.dg.descs[i].ch; c != nil {
			m.dg.descs[i].ch = nil
			c.put()
		}
	}
	if m.validated {
		// A send-once right on a lane is destroyed by telling its port (the lane's fd may have
		// come in this message, so before the fds close); a send lane's token is given back.
		switch m.dg.reply.kind {
		case kindLane:
			sp.destroyLaneRight(m, &m.dg.reply)
		case kindSendLane:
			sp.destroySendLaneRight(&m.dg.reply)
		}
		for i := range m.dg.descs {
			switch m.dg.descs[i].kind {
			case kindLane:
				sp.destroyLaneRight(m, &m.dg.descs[i])
			case kindSendLane:
				sp.destroySendLaneRight(&m.dg.descs[i])
			}
		}
	}
	for _, fd := range m.fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	m.fds = m.fds[:0]
	for _, mp := range m.maps {
		VMDeallocate(mp.addr, int(mp.size))
	}
	m.maps = m.maps[:0]
	if !m.validated {
		return // tokens in an unchecked message name nothing of ours
	}
	for _, r := range m.dg.descs {
		if r.kind == kindReceive {
			if p := sp.tokens[r.token]; p != nil {
				delete(sp.tokens, r.token)
				p.kill()
			}
		}
	}
}

// SizeFunc computes the size of the Mach message a receive would produce (without trailer), so
// a too-small buffer is detected before any right is copied out.
type SizeFunc func(ports, memories, bodyLen int) int

// Send is mach_msg's send half. timeout < 0 blocks.
// sendInFlightHook, when set (by tests), runs while a send holds its rights with the space lock
// free: before the message goes (delivered false), and after a channel's datagram went and
// before the send commits (delivered true).
var sendInFlightHook func(delivered bool)

func Send(m *Msg, timeout time.Duration) int32 {
	remoteDisp := uint8(m.Bits & abi.MACH_MSGH_BITS_REMOTE_MASK)
	localDisp := uint8(m.Bits & abi.MACH_MSGH_BITS_LOCAL_MASK >> 8)
	// A malformed header is refused before any name is looked at, in xnu's order
	// (ipc_kmsg_copyin_header_validate): the reply's disposition must be a send disposition, or
	// none with no reply name; then the voucher; then the destination's disposition.
	if localDisp == 0 && m.Local != abi.MACH_PORT_NULL || localDisp != 0 && !anySend(localDisp) {
		return abi.MACH_SEND_INVALID_HEADER
	}
	if m.Voucher != abi.MACH_PORT_NULL {
		return abi.MACH_SEND_INVALID_VOUCHER // the emulation has no vouchers
	}
	if !anySend(remoteDisp) {
		return abi.MACH_SEND_INVALID_HEADER
	}
	if len(m.Descs) > MaxDescriptors {
		return abi.MACH_SEND_TOO_LARGE
	}
	tx := getTransfer()
	defer putTransfer(tx)
	// fail undoes a copy-in that stopped half way (sp.mu held).
	fail := func(kr int32) int32 {
		tx.rollback()
		tx.quietMade()
		tx.ss.unpin()
		sp.mu.Unlock()
		tx.abort()
		return kr
	}
	sp.mu.Lock()
	var dest *sendChan
	kr := tx.passes(func() (kr int32) {
		dest, kr = tx.copyin(m, remoteDisp, localDisp)
		return kr
	}, abi.MACH_SEND_NO_BUFFER)
	if kr != abi.MACH_MSG_SUCCESS {
		return fail(kr)
	}
	tx.releaseRetained()
	if tx.circular {
		// xnu's ipc_kmsg_send: "don't allow the creation of a circular loop": a message marked
		// MACH_MSGH_BITS_CIRCULAR at copy-in is destroyed, and the send succeeds.
		tx.dropped = true
		tx.commit()
		tx.destroyCarried()
		tx.release()
		sp.mu.Unlock()
		tx.closeOwned()
		tx.ss.discard()
		for _, mc := range tx.mem {
			if mc.dealloc {
				VMDeallocate(mc.addr, int(mc.size))
			}
		}
		return abi.MACH_MSG_SUCCESS
	}
	sp.mu.Unlock()
	if h := sendInFlightHook; h != nil {
		h(false)
	}
	if !tx.sendAdopts(timeout) {
		// No room for an adopt within the send's timeout: a timed-out send, handed back as
		// one that timed out waiting for its queue (below).
		sp.mu.Lock()
		tx.deletedNames()
		tx.rollback()
		tx.handBack(m, remoteDisp, localDisp)
		tx.release()
		sp.mu.Unlock()
		tx.closeOwned()
		tx.ss.discard()
		return abi.MACH_SEND_TIMED_OUT
	}

	if len(tx.fds) > maxFDs {
		sp.mu.Lock()
		return fail(abi.MACH_SEND_TOO_LARGE)
	}
	body := m.Body
	if tx.local != nil {
		body = nil // copied straight into the queued message
	}
	if err := tx.fillMemory(body); err != nil {
		sp.mu.Lock()
		return fail(abi.MACH_SEND_NO_BUFFER)
	}
	var lm *inMsg
	if tx.local != nil {
		lm, kr = tx.deliverLocal(m.Body, timeout) // returns with sp.mu held
		tx.poolsDone()                            // the queued message took its copy
	} else {
		kr = tx.deliver(dest, timeout)
		if kr != abi.MACH_MSG_SUCCESS || tx.dropped {
			tx.unlockPooled()
		}
		tx.poolsDone()
		if h := sendInFlightHook; h != nil {
			h(true)
		}
		sp.mu.Lock()
	}
	if kr == abi.MACH_SEND_INVALID_DEST && tx.destPort != nil && tx.destPort.dead {
		// The destination, a port of this process alive at copy-in, died while the message was
		// on its way: xnu's ipc_kmsg_send finds it inactive and "can pretend it got sent and was
		// then immediately destroyed" (ipc_kmsg_destroy, MACH_MSG_SUCCESS). The message is
		// destroyed as a dropped one (a local one by enqueue, which finds the port dead).
		kr, tx.dropped = abi.MACH_MSG_SUCCESS, true
	}
	if kr == abi.MACH_MSG_SUCCESS {
		if lm != nil {
			tx.takeRefs(lm)
		}
		tx.commit()
		if tx.dropped {
			tx.destroyCarried()
		}
		if lm != nil {
			tx.local.enqueue(lm)
		}
	} else {
		if kr == abi.MACH_SEND_TIMED_OUT {
			tx.deletedNames() // xnu's copy-in completed: the freed names' requests fired
		}
		tx.rollback()
		if kr != abi.MACH_SEND_TIMED_OUT {
			tx.quietMade() // a timed-out send hands the rights it made back (handBack)
		}
		if lm != nil {
			lm.discard()
		}
	}
	if kr == abi.MACH_SEND_TIMED_OUT {
		// Before the transfer lets go of the rights its copy-in made: on xnu those very rights
		// are handed back (ipc_kmsg_copyout_pseudo), so a send right made by MAKE_SEND exists
		// throughout, and releasing the transfer's first must not fire no-senders.
		tx.handBack(m, remoteDisp, localDisp)
	}
	tx.release()
	sp.mu.Unlock()
	tx.closeOwned()
	tx.ss.discard()
	if kr == abi.MACH_MSG_SUCCESS {
		for _, mc := range tx.mem {
			if mc.dealloc {
				VMDeallocate(mc.addr, int(mc.size))
			}
		}
	}
	return kr
}

// anySend reports whether disp is a send disposition (MACH_MSG_TYPE_PORT_ANY_SEND).
func anySend(disp uint8) bool {
	switch disp {
	case dispMoveSend, dispCopySend, dispMakeSend, dispMoveSendOnce, dispMakeSendOnce:
		return true
	}
	return false
}

// passes runs a copy-in pass, and while it needs channels (setup.go) undoes it, makes them
// without the lock, and runs it again; short is the result when they cannot be made. The rights
// a pass made stay held until the next pass is done, so that none looks released meanwhile
// (no-senders). Called with sp.mu held.
func (tx *transfer) passes(pass func() int32, short int32) int32 {
	kr := pass()
	for kr == abi.MACH_MSG_SUCCESS && tx.ss.pending() {
		tx.retrying = true
		tx.rollback()
		tx.retrying = false
		tx.retain()
		sp.mu.Unlock()
		tx.closeOwned()
		err := tx.ss.prepare()
		sp.mu.Lock()
		tx.ss.unpin()
		if err != nil {
			return short
		}
		tx.restart()
		kr = pass()
	}
	return kr
}

// copyin copies the message's rights in: the destination, the reply right and the descriptors.
// A right that needs a channel records the need (tx.ss) and the pass goes on, so that one pass
// finds every channel to make. Called with sp.mu held.
func (tx *transfer) copyin(m *Msg, remoteDisp, localDisp uint8) (*sendChan, int32) {
	tx.spareFDs = maxFDs - fdsNeeded(m, localDisp)
	// Destination and reply under one name are copied in as a pair, as xnu's
	// ipc_kmsg_copyin_header does ("Destination and reply ports are the same!"): a move-send-once
	// on either side would leave the other nothing, so it is a destination error
	// (ipc_kmsg_copyin_header_validate); a move-send with a copy-send moves once and carries the
	// moved right twice (IPC_OBJECT_COPYIN_FLAGS_DEST_EXTRA_COPY), and two move-sends need two
	// user references at once (DEST_EXTRA_MOVE: else a destination error). Pairs with a make
	// disposition are copied in one after the other, as there.
	pair := m.Local == m.Remote && localDisp != 0
	if pair {
		if remoteDisp == dispMoveSendOnce || localDisp == dispMoveSendOnce {
			return nil, abi.MACH_SEND_INVALID_DEST
		}
		if remoteDisp == dispMoveSend && localDisp == dispMoveSend {
			if e := sp.entries[m.Remote]; e == nil || e.sendRefs < 2 {
				return nil, abi.MACH_SEND_INVALID_DEST
			}
		}
		if remoteDisp == dispCopySend && localDisp == dispMoveSend {
			remoteDisp, localDisp = dispMoveSend, dispCopySend // the destination moves, the reply copies
		}
		pair = remoteDisp == dispMoveSend && localDisp == dispCopySend
	}
	dest, kr := tx.copyinDest(m.Remote, remoteDisp)
	if kr != abi.MACH_MSG_SUCCESS {
		return nil, kr
	}
	tx.dg.bits |= m.Bits &^ abi.MACH_MSGH_BITS_PORTS_MASK
	tx.dg.id = m.ID
	if pair {
		// The reply is a second copy of the send right the destination moved.
		r, kr := tx.sendRecord(record{kind: kindPort, fd: -1, counterFD: -1}, tx.hold(dest))
		if kr != abi.MACH_MSG_SUCCESS {
			return nil, kr
		}
		tx.dg.reply = r
	} else if m.Local != abi.MACH_PORT_NULL && localDisp != 0 {
		r, kr := tx.right(m.Local, localDisp, abi.MACH_SEND_INVALID_REPLY, dest)
		if kr == abi.MACH_MSG_SUCCESS && r.kind == kindReceive {
			kr = abi.MACH_SEND_INVALID_REPLY
		}
		if kr != abi.MACH_MSG_SUCCESS {
			return nil, kr
		}
		tx.dg.reply = r
	}
	for _, d := range m.Descs {
		var r record
		if d.Memory {
			r = record{kind: kindMemory, typ: d.Copy, fd: -1, counterFD: -1, parts: 1, size: d.Size}
			if d.Size > 0 {
				r.parts = uint8(tx.memParts(d))
				r.fd = tx.addFD(-1) // filled in after the lock is dropped
				for range r.parts - 1 {
					tx.addFD(-1)
				}
				tx.mem = append(tx.mem, memCopy{index: r.fd, parts: int(r.parts), data: d.Data, addr: d.Addr,
					size: d.Size, dealloc: d.Dealloc})
			}
		} else if d.Name == abi.MACH_PORT_NULL || d.Name == abi.MACH_PORT_DEAD {
			var kr int32
			if r, kr = noPort(d.Name, d.Disp); kr != abi.MACH_MSG_SUCCESS {
				return nil, kr
			}
		} else {
			var kr int32
			r, kr = tx.right(d.Name, d.Disp, abi.MACH_SEND_INVALID_RIGHT, dest)
			if kr != abi.MACH_MSG_SUCCESS {
				return nil, kr
			}
		}
		tx.dg.descs = append(tx.dg.descs, r)
	}
	return dest, abi.MACH_MSG_SUCCESS
}

// selfPid is this process's pid, for the credentials of messages sent inside it.
var selfPid = int32(os.Getpid())

// deliverLocal makes the message for a port of this process, sent through a local send right
// (or a send-once right made for it): what a receiver would make of the datagram, with the
// credentials SCM_CREDENTIALS would give (this process's pid, real uid and gid) and the memory
// mapped as a receiver maps it. It then takes a slot in the port's queue, waiting within timeout
// as a sender on a channel does (a message on a send-once right takes none). It returns with
// sp.mu held; on success the caller gives the message its rights (takeRefs) and queues it.
func (tx *transfer) deliverLocal(body []byte, timeout time.Duration) (*inMsg, int32) {
	m := newInMsg()
	m.validated = true
	m.creds = unix.Ucred{Pid: selfPid, Uid: uint32(unix.Getuid()), Gid: uint32(unix.Getgid())}
	m.destType = typePortSend
	if tx.localOnce {
		m.destType = typePortSendOnce
	}
	m.dg.bits, m.dg.id, m.dg.bodyFD, m.dg.bodyLen = tx.dg.bits, tx.dg.id, -1, uint32(len(body))
	m.dg.reply = tx.dg.reply
	m.dg.reply.ch = nil // the message takes its own references (takeRefs)
	for _, r := range tx.dg.descs {
		r.ch = nil
		m.dg.descs = append(m.dg.descs, r)
	}
	m.body = append(m.body[:0], body...)
	for _, r := range m.dg.descs {
		if r.kind != kindMemory {
			continue
		}
		mp := mapping{size: r.size}
		if r.size > 0 {
			fds := tx.fds[r.fd : int(r.fd)+int(r.parts)]
			if mp.addr = mapMemory(fds, r.size, r.parts == 1 && copiedInFD(fds[0], r.size)); mp.addr == 0 {
				sp.mu.Lock()
				m.discard()
				return nil, abi.MACH_SEND_NO_BUFFER
			}
		}
		m.maps = append(m.maps, mp)
	}
	p := tx.local
	sp.mu.Lock()
	switch {
	case tx.localOnce:
		// A message on a send-once right is queued whatever the queue limit (xnu's
		// ipc_mqueue_send never blocks one); a port that died destroys it (enqueue).
		return m, abi.MACH_MSG_SUCCESS
	case p.dead:
		return m, abi.MACH_SEND_INVALID_DEST
	case p.reserve():
		m.counted = true
		return m, abi.MACH_MSG_SUCCESS
	case timeout == 0:
		return m, abi.MACH_SEND_TIMED_OUT
	}
	// The queue is full: wait on the port's counter, made now if the port has none (the only
	// fd a port without remote senders ever needs for its queue), as channel senders wait.
	ctr, err := p.counter()
	if err != nil {
		return m, abi.MACH_SEND_NO_BUFFER
	}
	ctr.ref()
	sp.mu.Unlock()
	res := ctr.acquire(&deadline{timeout: timeout}, func() bool { return true }) // kill wakes it when the port dies
	ctr.close()
	sp.mu.Lock()
	switch res {
	case acquired:
		m.counted = true
		return m, abi.MACH_MSG_SUCCESS
	case acquireTimedOut:
		return m, abi.MACH_SEND_TIMED_OUT
	case acquirePortDead:
		return m, abi.MACH_SEND_INVALID_DEST
	}
	// xnu treats a destination that dies while the sender waits as a delivery: the message is
	// destroyed (enqueue finds the port dead) and the send succeeds.
	return m, abi.MACH_MSG_SUCCESS
}

// takeRefs gives a message made by deliverLocal its own references to the rights it carries,
// and to its destination's send right, which a queued message holds until it is received (as
// a message queued on a channel keeps its sender). Called with sp.mu held.
func (tx *transfer) takeRefs(m *inMsg) {
	if !tx.localOnce {
		m.hold = tx.dest.get()
	}
	if c := tx.dg.reply.ch; c != nil {
		m.dg.reply.ch = c.get()
	}
	for i := range tx.dg.descs {
		if c := tx.dg.descs[i].ch; c != nil {
			m.dg.descs[i].ch = c.get()
		}
	}
}

// handBack rewrites m as xnu hands a timed-out send back (mach_msg_trap_send: the message was
// copied in whole, ipc_kmsg_copyout_pseudo copies it out again into the sender's space): every
// right the message names is the sender's again, as the type it would be received as
// (MACH_MSG_TYPE_PORT_*). Moved rights are where they were (the copy-in was undone), but the
// rights the copy-in made exist now: MAKE_SEND made a send right (one more user reference and
// make-send count), MAKE_SEND_ONCE a send-once right under a new name, COPY_SEND one more user
// reference. Releasing those has the usual effects: MACH_NOTIFY_SEND_ONCE, no-senders. Memory
// stays where it was: nothing was copied out of it. Called with sp.mu held.
func (tx *transfer) handBack(m *Msg, remoteDisp, localDisp uint8) {
	bits := m.Bits &^ abi.MACH_MSGH_BITS_PORTS_MASK
	name, typ := handBackRight(tx.newName(m.Remote), remoteDisp)
	m.Remote, bits = name, bits|uint32(typ)
	if m.Local != abi.MACH_PORT_NULL && localDisp != 0 {
		name, typ = handBackRight(tx.newName(m.Local), localDisp)
		m.Local, bits = name, bits|uint32(typ)<<8
	}
	m.Bits = bits
	for i := range m.Descs {
		if d := &m.Descs[i]; !d.Memory {
			d.Name, d.Disp = handBackRight(tx.newName(d.Name), d.Disp)
		}
	}
}

// newName is the name a right the send moved was given back under (renames), else name.
func (tx *transfer) newName(name uint32) uint32 {
	for _, r := range tx.renames {
		if r[0] == name {
			return r[1]
		}
	}
	return name
}

// handBackRight makes again the right one disposition copied in, and returns its name and type.
// A right that is gone meanwhile comes back as MACH_PORT_DEAD, as a right whose port died does:
// xnu's copy-out of a right whose port is dead destroys it and names it MACH_PORT_DEAD
// (ipc_kmsg_copyout_object: ipc_object_copyout fails with KERN_INVALID_CAPABILITY). A moved
// right the rollback gave back to its name, which turned into a dead name, is taken back out
// of it (the name went at copy-in on xnu).
func handBackRight(name uint32, disp uint8) (uint32, uint8) {
	r, _ := noPort(name, disp)
	if name == abi.MACH_PORT_NULL || name == abi.MACH_PORT_DEAD {
		return name, r.typ
	}
	e := sp.entries[name]
	if e == nil {
		return abi.MACH_PORT_DEAD, r.typ
	}
	sp.refreshDead(e)
	switch disp {
	case dispMoveSend, dispMoveSendOnce:
		live := e.sendRefs > 0
		if disp == dispMoveSendOnce {
			live = e.sonce != nil
		}
		if !live && e.deadRefs > 0 {
			dropRefs(&e.deadRefs, 1)
			sp.dropIfEmpty(e)
			return abi.MACH_PORT_DEAD, r.typ
		}
	case dispCopySend:
		if e.sendRefs == 0 {
			return abi.MACH_PORT_DEAD, r.typ
		}
		e.sendRefs, _ = addRefs(e.sendRefs, 1)
	case dispMakeSend:
		if e.recv == nil || sp.makeSend(e) != abi.KERN_SUCCESS {
			return abi.MACH_PORT_DEAD, r.typ
		}
	case dispMakeSendOnce:
		so := uint32(abi.MACH_PORT_DEAD)
		withChannel(setupSendOnce, func() *port {
			if e := sp.entries[name]; e != nil && e.recv != nil {
				return e.recv
			}
			return nil
		}, func(c *sendChan) int32 {
			if c != nil {
				e := sp.newName()
				e.sonce, e.id = c, c.id
				so = e.name
			}
			return abi.KERN_SUCCESS
		})
		return so, r.typ
	}
	return name, r.typ
}

// transfer collects what one send needs while sp.mu is held, and what to undo or commit.
type transfer struct {
	dg       datagram
	fds      []int // fds to pass; entries owned by the transfer are closed in abort
	owned    []bool
	holds    []*sendChan // channels used, held until the send is over
	moves    []func()    // what a successful send does last (copy-in took the moved rights)
	undos    []func()    // what a failed send gives back
	mem      []memCopy
	spareFDs int    // fds the message may still use to split memory into parts
	wire     []byte // the encoded datagram, reused
	oob      []byte // its SCM_RIGHTS, reused
	dest     *sendChan
	destPort *port // the destination when it lives in this process
	dropped  bool  // delivered as destroyed: the send-once channel was full
	issued   []issuedToken
	// sendIssued are the send lanes this transfer issued a send right's token on, once each.
	sendIssued []*sendLane
	adopts     []pendingAdopt // adoptOut's, until they go
	// retrying is set while a copy-in pass is undone to be run again (passes), not failed.
	retrying bool
	spends   *sendChan // the lane right the message is sent on
	// local is the destination port when the message goes straight into its queue: sent through
	// a local send right, or a send-once right made for it (localOnce). Its rights then travel
	// as references (record.ch), not fds.
	local     *port
	localOnce bool
	ss        setups      // channels to make outside sp.mu, and made (setup.go)
	retained  []*sendChan // holds of an undone copy-in pass, released after the next one
	// pooled are the pooled memfds the message carries (mempool.go): locked for it (unlocked
	// unless it goes) and busy until the send is over (poolsDone).
	pooled []*poolSlot
	// circular is set when a receive right the message carries would travel in a queue only
	// that receive right leads to (circular): the message is destroyed.
	circular bool
	// taken is what the copy-in took from the space (takenRight).
	taken []takenRight
	// made are the ports the send made send rights for, over all its copy-in passes (quietMade).
	made []madePort
	// renames are the rights a failed send gave back under another name than their own: old,
	// new (handBack).
	renames [][2]uint32
}

// issuedToken is a send-once right this transfer made as a lane token.
type issuedToken struct {
	l   *lane
	tok uint64
}

var transfers = sync.Pool{New: func() any { return new(transfer) }}

// getTransfer returns a cleared transfer whose slices keep their capacity from earlier sends.
func getTransfer() *transfer {
	tx := transfers.Get().(*transfer)
	tx.holds = tx.holds[:0]
	tx.made = tx.made[:0]
	tx.restart()
	return tx
}

// restart clears what a copy-in pass collected, for another pass (or another send); channels
// made outside the lock and the holds retained stay.
func (tx *transfer) restart() {
	tx.dg = datagram{bodyFD: -1, reply: record{fd: -1, counterFD: -1}, descs: tx.dg.descs[:0]}
	tx.fds, tx.owned = tx.fds[:0], tx.owned[:0]
	clear(tx.moves)
	clear(tx.undos)
	tx.moves, tx.undos, tx.mem = tx.moves[:0], tx.undos[:0], tx.mem[:0]
	tx.dest, tx.destPort, tx.renames, tx.dropped = nil, nil, tx.renames[:0], false
	tx.issued, tx.spends = tx.issued[:0], nil
	clear(tx.sendIssued)
	tx.sendIssued = tx.sendIssued[:0]
	tx.local, tx.localOnce = nil, false
	tx.circular = false
	clear(tx.taken)
	tx.taken = tx.taken[:0]
}

// retain keeps the holds of an undone pass until the next pass is done. Called with sp.mu held.
func (tx *transfer) retain() {
	tx.retained = append(tx.retained, tx.holds...)
	clear(tx.holds)
	tx.holds = tx.holds[:0]
}

// releaseRetained drops the holds retain kept. Called with sp.mu held.
func (tx *transfer) releaseRetained() {
	for _, h := range tx.retained {
		h.put()
	}
	clear(tx.retained)
	tx.retained = tx.retained[:0]
}

func putTransfer(tx *transfer) {
	tx.dropAdopts()
	clear(tx.holds[:cap(tx.holds)])
	clear(tx.moves[:cap(tx.moves)])
	clear(tx.undos[:cap(tx.undos)])
	clear(tx.mem[:cap(tx.mem)])
	clear(tx.issued[:cap(tx.issued)])
	clear(tx.sendIssued[:cap(tx.sendIssued)])
	clear(tx.taken[:cap(tx.taken)])
	clear(tx.made[:cap(tx.made)])
	tx.dest, tx.destPort, tx.spends, tx.local = nil, nil, nil, nil
	transfers.Put(tx)
}

type memCopy struct {
	index   int16 // of the first memfd
	parts   int
	data    []byte
	addr    uintptr
	size    uint32
	dealloc bool
}

func (tx *transfer) addFD(fd int) int16 {
	tx.fds = append(tx.fds, fd)
	tx.owned = append(tx.owned, false)
	return int16(len(tx.fds) - 1)
}

func (tx *transfer) hold(c *sendChan) *sendChan {
	tx.holds = append(tx.holds, c.get())
	return c
}

// dest resolves the destination right. Called with sp.mu held.
func (tx *transfer) copyinDest(name uint32, disp uint8) (*sendChan, int32) {
	e := sp.entries[name]
	if e == nil {
		return nil, abi.MACH_SEND_INVALID_DEST
	}
	// No liveness probe here: a dead destination shows as EPIPE from sendmsg.
	switch disp {
	case dispCopySend, dispMoveSend:
		c := tx.useSend(e, disp == dispMoveSend)
		if c == nil {
			return nil, abi.MACH_SEND_INVALID_DEST
		}
		tx.dest, tx.destPort, tx.local = c, e.recv, c.local
		if c.local != nil {
			tx.destPort = c.local
		} else if e.recv == nil {
			tx.destPort = localPort(c.id)
		}
		if tx.destPort != nil && tx.destPort.dead {
			// Dead at copy-in: xnu's copy-in finds a dead name (the send fails), unlike a port
			// that dies after it (Send: pretend it got sent).
			return nil, abi.MACH_SEND_INVALID_DEST
		}
		tx.dg.bits |= typePortSend << 8
		return c, abi.MACH_MSG_SUCCESS
	case dispMakeSend:
		if e.recv == nil {
			return nil, abi.MACH_SEND_INVALID_DEST
		}
		// A send right made for the message, held by it until it is received.
		p := e.recv
		tx.countMakeSend(p)
		c := p.newLocalSend()
		tx.holds = append(tx.holds, c) // the transfer owns the only hold
		tx.dg.bits |= typePortSend << 8
		tx.dest, tx.destPort, tx.local = c, p, p
		return c, abi.MACH_MSG_SUCCESS
	case dispMakeSendOnce:
		if e.recv == nil {
			return nil, abi.MACH_SEND_INVALID_DEST
		}
		// A send-once right made and used by the message: no channel, the message is queued.
		tx.dg.bits |= typePortSendOnce << 8
		tx.destPort, tx.local, tx.localOnce = e.recv, e.recv, true
		return nil, abi.MACH_MSG_SUCCESS
	case dispMoveSendOnce:
		c := tx.moveSendOnce(e)
		if c == nil {
			return nil, abi.MACH_SEND_INVALID_DEST
		}
		if c.lane != nil {
			// The message names its right by token on the lane (lane.go); once sent, the
			// right is used and its release tells the port nothing.
			tx.dg.laneToken = c.token
			tx.spends = c // commit marks it spent
		}
		tx.dest, tx.destPort = c, localPort(c.id)
		tx.dg.bits |= typePortSendOnce << 8
		return c, abi.MACH_MSG_SUCCESS
	}
	return nil, abi.MACH_SEND_INVALID_HEADER
}

// moveSendOnce takes an entry's send-once right for the message at copy-in, as xnu's copy-in
// does (ipc_right_copyin, MACH_MSG_TYPE_MOVE_SEND_ONCE: the right leaves the entry, and a name
// left empty is freed, its dead-name request kept aside until the commit sends
// MACH_NOTIFY_PORT_DELETED on it: dropMoved): from then
// on no other thread finds the right under its name, to send on, release or watch it. The
// entry's hold on the channel becomes the message's, released by the commit (the transfer's own
// hold keeps it open until the send is over); a failed send gives the right back.
func (tx *transfer) moveSendOnce(e *entry) *sendChan {
	if e.sonce == nil {
		return nil // absent, or already moved (by this message or one in flight)
	}
	c := tx.hold(e.sonce)
	e.sonce = nil
	dn := sp.dropMoved(e)
	tx.taken = append(tx.taken, takenRight{kind: takenSendOnce, e: e, c: c, dn: dn})
	return c
}

// useSend holds the entry's send right for this message to copy or move. A move takes one user
// reference from the entry at copy-in, as xnu's does (ipc_right_copyin, MACH_MSG_TYPE_MOVE_SEND:
// a count pegged at MACH_PORT_UREFS_MAX stays; the last reference leaves the name, which is
// freed if nothing else is left, with its dead-name request): a second message moving the same
// reference meanwhile finds none. A failed send gives the reference back. Nil if the entry has
// no send right left.
func (tx *transfer) useSend(e *entry, move bool) *sendChan {
	if e.send == nil || e.sendRefs == 0 {
		return nil
	}
	c := tx.hold(e.send)
	if !move || e.sendRefs == urefsMax {
		return c
	}
	e.sendRefs--
	if e.sendRefs > 0 {
		tx.taken = append(tx.taken, takenRight{kind: takenSend, e: e, c: c})
		return c
	}
	// The last reference: the entry's hold on the channel is the message's now.
	e.send = nil
	if n, ok := sp.byPort[e.id]; ok && n == e.name && e.recv == nil {
		delete(sp.byPort, e.id)
	}
	dn := sp.dropMoved(e)
	tx.taken = append(tx.taken, takenRight{kind: takenLastSend, e: e, c: c, dn: dn})
	return c
}

// circular reports whether p's receive right, sent to dest, would travel in a queue that only p's
// receive right leads to: dest is p, or dest's own receive right travels (inside this process)
// in p's queue, or in a queue whose receive right does, and so on. xnu checks every receive right
// it copies in so (ipc_kmsg_copyin_body: ipc_port_check_circularity) and destroys the message
// (ipc_kmsg_send, MACH_MSGH_BITS_CIRCULAR), for nothing could ever receive it. Called with
// sp.mu held.
func circular(p, dest *port) bool {
	for q := dest; q != nil && !q.dead; q = q.inTransit {
		if q == p {
			return true
		}
		if e := sp.entries[q.name]; e != nil && e.recv == q {
			return false // a name holds q's receive right: the chain ends there
		}
	}
	return false
}

// countMakeSend counts a send right the message makes in its port's make-send count at copy-in,
// as xnu does (ipc_right_copyin, MACH_MSG_TYPE_MAKE_SEND: ip_mscount++ with the space locked);
// a failed send takes it back (a timed-out one makes the right again: handBack). Called before
// the right is made, so that the transfer notes whether the port had a send right then.
func (tx *transfer) countMakeSend(p *port) {
	tx.noteMade(p)
	p.mscount++
	p.nsQuiet = false
	tx.taken = append(tx.taken, takenRight{kind: madeSend, p: p})
}

// madePort is a port a send made a send right for: whether it had none before the send first
// made one (quiet), and its make-send count then.
type madePort struct {
	p       *port
	quiet   bool
	mscount uint32
}

// noteMade notes p the first time the send (any of its copy-in passes) makes a send right for
// it. Called with sp.mu held.
func (tx *transfer) noteMade(p *port) {
	for _, m := range tx.made {
		if m.p == p {
			return
		}
	}
	quiet := p.senders == 0 && p.localSenders == 0
	tx.made = append(tx.made, madePort{p: p, quiet: quiet, mscount: p.mscount})
}

// quietMade keeps the release of the send rights a failed send made from firing no-senders, for
// ports that had no send right before the send and for which nobody made one meanwhile: the
// rights never existed for anyone, and on macOS the armed request would stay armed (a
// MACH_SEND_NO_BUFFER send "makes nothing"; xnu's no-senders comes when a send right that
// existed goes, ipc_notify_no_senders). Called with sp.mu held, after the rollback gave the
// make-send counts back and before the transfer releases its holds.
func (tx *transfer) quietMade() {
	for _, m := range tx.made {
		if m.quiet && !m.p.dead && m.p.mscount == m.mscount {
			m.p.nsQuiet = true
		}
	}
}

// takenRight is what a copy-in took from the space (or counted) that the commit completes and a
// rollback gives back. Kept as data, not closures: a send's copy-in allocates nothing.
type takenRight struct {
	kind uint8
	e    *entry
	c    *sendChan
	p    *port
	dn   *deadNameReq // the dead-name request of a name the move emptied (dropMoved)
}

const (
	takenSendOnce = iota // e's send-once right c; the entry's hold on c is the message's
	takenSend            // one of e's send references (e keeps its hold on c)
	takenLastSend        // e's last send reference, with the entry's hold on c
	madeSend             // a MAKE_SEND counted in p's make-send count
	takenName            // e, freed by a move (of its receive right), with its dead-name request
)

// commitTaken releases the holds on channels that the entries gave to the message, and sends
// MACH_NOTIFY_PORT_DELETED for the names the moves freed. Called with sp.mu held.
func (tx *transfer) commitTaken() {
	tx.deletedNames()
	for _, t := range tx.taken {
		if t.kind == takenSendOnce || t.kind == takenLastSend {
			t.c.put()
		}
	}
}

// deletedNames fires the dead-name requests of the names the copy-in freed
// (MACH_NOTIFY_PORT_DELETED), as xnu's ipc_kmsg_copyin_header does once the copy-in is done: at
// the commit, and for a timed-out send, whose copy-in xnu completed before the send waited (its
// rights come back by ipc_kmsg_copyout_pseudo, under names without requests). Called with sp.mu
// held.
func (tx *transfer) deletedNames() {
	for i := range tx.taken {
		if t := &tx.taken[i]; t.dn != nil {
			sp.portDeleted(t.e.name, t.dn)
			t.dn = nil
		}
	}
}

// undoTaken gives back what the copy-in took, last first. Called with sp.mu held.
func (tx *transfer) undoTaken() {
	for i := len(tx.taken) - 1; i >= 0; i-- {
		switch t := tx.taken[i]; t.kind {
		case takenSendOnce:
			sp.giveBack(t.e)
			t.e.sonce = t.c
			sp.restoreDeadName(t.e, t.dn)
		case takenSend, takenLastSend:
			name := sp.giveBackSend(t.e, t.c, t.kind == takenLastSend)
			tx.renamed(t.e.name, name)
			if t.dn != nil && name != t.e.name {
				// The reference went to the port's other name: its own name stays freed.
				sp.portDeleted(t.e.name, t.dn)
			} else {
				sp.restoreDeadName(t.e, t.dn)
			}
		case madeSend:
			t.p.mscount--
		case takenName:
			// The receive right's undo (run before) gave it back, under e's name or another.
			if sp.entries[t.e.name] == t.e {
				sp.restoreDeadName(t.e, t.dn)
			} else {
				sp.portDeleted(t.e.name, t.dn)
			}
		}
	}
}

// renamed records that a failed send gave a right it moved back under another name than its
// own (the port had another name by then), for handBack.
func (tx *transfer) renamed(old, name uint32) {
	if old != name {
		tx.renames = append(tx.renames, [2]uint32{old, name})
	}
}

// moveReceive takes a receive right out of its name for the message at copy-in, as xnu's copy-in
// does (ipc_right_copyin, MACH_MSG_TYPE_MOVE_RECEIVE: ipc_port_clear_receiver unlinks the port
// from its sets, sends its blocked receivers away and clears its make-send count, sequence
// number, context and guard, and a name left empty is freed): from then on it travels as a
// token, and no other thread receives from it or destroys it under its old name. A failed send
// gives it back as it was. Called with sp.mu held.
func (tx *transfer) moveReceive(e *entry) uint64 {
	p := e.recv
	var sets []*pset
	for ps := range p.sets {
		sets = append(sets, ps)
	}
	sp.leaveSets(p)
	p.movedAway()
	mscount, seqno, context, guarded := p.mscount, p.seqno, p.context, p.guarded
	p.mscount, p.seqno, p.context, p.guarded = 0, 0, 0, false
	e.recv = nil
	if circular(p, tx.destPort) {
		tx.circular = true
	}
	p.inTransit = tx.destPort
	if n, ok := sp.byPort[p.id]; ok && n == e.name && e.sendRefs == 0 {
		delete(sp.byPort, p.id)
	}
	if dn := sp.dropMoved(e); dn != nil {
		tx.taken = append(tx.taken, takenRight{kind: takenName, e: e, dn: dn})
	}
	tok := sp.newToken(p)
	tx.undos = append(tx.undos, func() {
		delete(sp.tokens, tok)
		p.inTransit = nil
		p.mscount, p.seqno, p.context, p.guarded = mscount, seqno, context, guarded
		tx.renamed(e.name, sp.giveBackReceive(e, p))
		for _, ps := range sets {
			if !ps.dead {
				ps.add(p)
			}
		}
	})
	return tok
}

// exportTo makes c, a local send right, carriable to another process: the channel its copies
// there share, made outside the lock (setup.go). Without one made yet, it records the need.
// Called with sp.mu held.
func (tx *transfer) exportTo(c *sendChan) int32 {
	cs := tx.ss.take(setupSend, c.local, portID{})
	if cs == nil {
		return tx.ss.need(setupSend, c.local, portID{})
	}
	ch := cs.installChan()
	c.fd, c.ctr, c.ownsCtr, c.rc = ch.fd, ch.ctr, true, ch.rc
	return abi.MACH_MSG_SUCCESS
}

// localPort returns the port a channel leads to when its receive right is in this process.
func localPort(id portID) *port {
	if n, ok := sp.byPort[id]; ok {
		if e := sp.entries[n]; e != nil && e.recv != nil {
			return e.recv
		}
	}
	return nil
}

// right copies in one right for the reply field or a port descriptor. Called with sp.mu held.
func (tx *transfer) right(name uint32, disp uint8, invalid int32, dest *sendChan) (record, int32) {
	r := record{kind: kindPort, fd: -1, counterFD: -1}
	if name == abi.MACH_PORT_NULL || name == abi.MACH_PORT_DEAD {
		return r, invalid
	}
	e := sp.entries[name]
	if e == nil {
		return r, invalid
	}
	sp.refreshDead(e)
	if r, ok := tx.copyinDead(e, disp); ok {
		return r, abi.MACH_MSG_SUCCESS
	}
	switch disp {
	case dispCopySend, dispMoveSend, dispMakeSend:
		var c *sendChan
		switch {
		case disp == dispMakeSend:
			if e.recv == nil {
				return r, invalid
			}
			tx.countMakeSend(e.recv)
			if e.send != nil {
				c = tx.hold(e.send)
			} else {
				c = e.recv.newLocalSend()
				tx.holds = append(tx.holds, c)
			}
		default:
			if c = tx.useSend(e, disp == dispMoveSend); c == nil {
				return r, invalid
			}
		}
		return tx.sendRecord(r, c)
	case dispMakeSendOnce:
		if e.recv == nil {
			return r, invalid
		}
		p := e.recv
		if tx.destPort == nil && tx.dest != nil && tx.dest.id != (portID{}) {
			// To another process: a token on the lane for (this port, the destination).
			l := p.usableLane(tx.dest.id)
			if l == nil {
				cs := tx.ss.take(setupLane, p, tx.dest.id)
				if cs == nil {
					return r, tx.ss.need(setupLane, p, tx.dest.id)
				}
				l = cs.installLane()
			}
			tok, w := l.issue()
			tx.issued = append(tx.issued, issuedToken{l, tok}) // rollback takes it back
			r = record{kind: kindLane, typ: typePortSendOnce, fd: -1, counterFD: -1, laneKey: l.key, token: tok}
			if w >= 0 {
				// A new lane: its write end travels in this message and is closed here after
				// the send. A failed send gives it back to the lane, if the lane is still there.
				i := tx.addFD(w)
				r.fd, tx.owned[i] = i, true
				tx.undos = append(tx.undos, func() {
					if p.chans[l.rc.fd] == l.rc && l.w < 0 {
						l.w, tx.owned[i] = w, false
					}
				})
			}
			return r, abi.MACH_MSG_SUCCESS
		}
		cs := tx.ss.take(setupSendOnce, p, portID{})
		if cs == nil {
			return r, tx.ss.need(setupSendOnce, p, portID{})
		}
		c := cs.installChan()
		tx.holds = append(tx.holds, c)
		tx.undos = append(tx.undos, func() { discardSendOnce(c) })
		r.typ, r.id = typePortSendOnce, c.id
		if tx.local != nil {
			r.ch = c
		} else {
			r.fd = tx.addFD(c.fd)
		}
		return r, abi.MACH_MSG_SUCCESS
	case dispMoveSendOnce:
		c := tx.moveSendOnce(e)
		if c == nil {
			return r, invalid
		}
		r.typ, r.id = typePortSendOnce, c.id
		if tx.local != nil {
			r.ch = c // it stays in this process
			return r, abi.MACH_MSG_SUCCESS
		}
		if c.lane != nil {
			// The right leaves for another holder: it becomes a channel of its own, whose
			// read end the port adopts once the message is sent (lane.go), so that the port
			// learns when this holder goes. (Its read end passes credentials from the first
			// message on, as on every channel; the port sets it again when it adopts it.)
			cs := tx.ss.take(setupPair, nil, portID{})
			if cs == nil {
				return r, tx.ss.need(setupPair, nil, portID{})
			}
			rd := cs.r
			r.fd = tx.addFD(cs.w)
			tx.owned[r.fd] = true
			tx.undos = append(tx.undos, func() { unix.Close(rd) })
			tx.moves = append(tx.moves, func() {
				if laneCtl(c.fd, laneAdopt, c.token, rd) == nil {
					c.spent = true
				}
				unix.Close(rd)
			})
			return r, abi.MACH_MSG_SUCCESS
		}
		r.fd = tx.addFD(c.fd)
		return r, abi.MACH_MSG_SUCCESS
	case dispMoveReceive:
		if e.recv == nil {
			return r, invalid
		}
		if tx.destPort == nil {
			return r, SendMoveReceiveRemote
		}
		tok := tx.moveReceive(e)
		r = record{kind: kindReceive, typ: typePortReceive, fd: -1, counterFD: -1, token: tok}
		return r, abi.MACH_MSG_SUCCESS
	}
	return r, abi.MACH_SEND_INVALID_TYPE
}

// sendRecord fills r in for the send right c, which the transfer holds. Called with sp.mu held.
func (tx *transfer) sendRecord(r record, c *sendChan) (record, int32) {
	r.typ, r.id = typePortSend, c.id
	if tx.local != nil {
		r.ch = c // the queued message takes its own reference (takeRefs)
		return r, abi.MACH_MSG_SUCCESS
	}
	if c.local != nil && tx.destPort == nil && tx.dest != nil && tx.dest.id != (portID{}) {
		// A right to a port of this process, to another process's port: a token on the send
		// lane to that port, if there is one (sendlane.go).
		if r, kr, ok := tx.sendToken(r, c.local); ok {
			return r, kr
		}
	}
	if c.slane != nil {
		return tx.adoptOut(r, c)
	}
	if c.local != nil && c.fd < 0 {
		if kr := tx.exportTo(c); kr != abi.MACH_MSG_SUCCESS || c.fd < 0 {
			return r, kr // no channel yet: the need is recorded, the pass goes on
		}
	}
	r.fd = tx.addFD(c.fd)
	r.counterFD = tx.addFD(c.ctr.fd)
	return r, abi.MACH_MSG_SUCCESS
}

// adoptOut carries c, a send right on a send lane, to another process: the right gets a channel
// of its own, whose read end the port's process adopts (an adopt datagram on the lane's control
// channel, at the commit), so that the port counts its new holder as a sender by the channel,
// as any other, and the lane's tokens stay this process's alone. Called with sp.mu held.
func (tx *transfer) adoptOut(r record, c *sendChan) (record, int32) {
	cs := tx.ss.take(setupPair, nil, portID{})
	if cs == nil {
		return r, tx.ss.need(setupPair, nil, portID{})
	}
	r.fd = tx.addFD(cs.w)
	tx.owned[r.fd] = true
	r.counterFD = tx.addFD(c.ctr.fd)
	// The adopt goes before the message (sendAdopts), so that the new holder's right has its
	// reader whatever becomes of this process after the send, and before c's going gives the
	// lane's tokens back on the same control channel.
	tx.adopts = append(tx.adopts, pendingAdopt{c.slane, cs.r})
	return r, abi.MACH_MSG_SUCCESS
}

// pendingAdopt is the read end of a channel made for a send right on a send lane that this
// transfer carries on to another process (adoptOut), until the lane's port has it.
type pendingAdopt struct {
	l  *remoteSendLane
	rd int
}

// sendAdopts passes the read ends of the channels adoptOut made to their ports, on their lanes'
// data channels, before the message goes: the adopt is then in the port's queue, behind this
// process's messages on the lane, whatever becomes of this process after the send, and the lane
// counts as a sender until it is read (a queued datagram holds the lane: settleSendLane), so
// the returns that follow on the control channel cannot make the port's senders drop to 0
// before the new holder's channel is the port's. It waits for room as a message to the port
// would, within timeout (< 0: for good); false when it ran out. Called without sp.mu, the lanes
// held by the transfer's holds.
func (tx *transfer) sendAdopts(timeout time.Duration) bool {
	if len(tx.adopts) == 0 {
		return true
	}
	deadline := time.Now().Add(timeout)
	for i := range tx.adopts {
		a := &tx.adopts[i]
		for {
			err := laneCtl(a.l.fd, sendLaneAdopt, 0, a.rd)
			if !errors.Is(err, unix.EAGAIN) {
				break // sent, or the port's process is gone (its port dead: the right is dead too)
			}
			left := time.Duration(-1)
			if timeout >= 0 {
				if left = time.Until(deadline); left <= 0 {
					return false
				}
			}
			waitWritable(a.l.fd, left)
		}
		unix.Close(a.rd)
		a.rd = -1
	}
	return true
}

// dropAdopts closes the read ends adoptOut made that did not go (the send failed, or the pass
// was undone).
func (tx *transfer) dropAdopts() {
	for _, a := range tx.adopts {
		if a.rd >= 0 {
			unix.Close(a.rd)
		}
	}
	clear(tx.adopts)
	tx.adopts = tx.adopts[:0]
}

// copyinDead copies in a dead name given as a send or send-once right: xnu accepts it in the
// reply field and in port descriptors (IPC_OBJECT_COPYIN_FLAGS_DEADOK, in ipc_kmsg_copyin_header
// and ipc_kmsg_copyin_port_descriptor), and the receiver gets MACH_PORT_DEAD. A move takes one
// user reference of the dead name (ipc_right_copyin: move_dead), a copy none (copy_dead).
// Reports false for an entry that is not a dead name or a disposition that needs a live right.
// Called with sp.mu held.
func (tx *transfer) copyinDead(e *entry, disp uint8) (record, bool) {
	if e.deadRefs == 0 || e.recv != nil || e.pset != nil || e.sendRefs > 0 || e.sonce != nil {
		return record{}, false
	}
	switch disp {
	case dispCopySend:
	case dispMoveSend, dispMoveSendOnce:
		refs := e.deadRefs
		dropRefs(&e.deadRefs, 1)
		sp.dropIfEmpty(e)
		if e.deadRefs < refs {
			tx.undos = append(tx.undos, func() {
				sp.giveBack(e)
				e.deadRefs++
			})
		}
	default:
		return record{}, false
	}
	r, _ := noPort(abi.MACH_PORT_DEAD, disp)
	return r, true
}

// noPort is a port descriptor naming MACH_PORT_NULL or MACH_PORT_DEAD: no right travels, and the
// receiver gets the same name with the type the disposition gives (xnu's
// ipc_kmsg_copyin_port_descriptor takes an invalid name as it is, ipc_object_copyin_type).
func noPort(name uint32, disp uint8) (record, int32) {
	r := record{kind: kindNoPort, fd: -1, counterFD: -1, size: name}
	switch disp {
	case dispMoveReceive:
		r.typ = typePortReceive
	case dispMoveSend, dispCopySend, dispMakeSend:
		r.typ = typePortSend
	case dispMoveSendOnce, dispMakeSendOnce:
		r.typ = typePortSendOnce
	default:
		return r, abi.MACH_SEND_INVALID_TYPE
	}
	return r, abi.MACH_MSG_SUCCESS
}

// discardSendOnce retires a send-once channel made for a send that failed: its hang-up is
// silent, as the right never existed for anyone.
func discardSendOnce(c *sendChan) {
	if c.rc != nil {
		c.rc.used = true
	}
}

// splitMin is the smallest out-of-line copy split into parts written in parallel; a part is
// never smaller than half of it.
const splitMin = 8 << 20

// memParts chooses how many memfds an out-of-line region travels in: one for small regions and
// for regions donated whole; else one per CPU, within maxMemParts and the message's fd budget.
func (tx *transfer) memParts(d Desc) int {
	if d.Size < splitMin || (d.Dealloc && isRegion(d.Addr, d.Size)) {
		return 1
	}
	parts := max(min(runtime.GOMAXPROCS(0), maxMemParts, int(d.Size/(splitMin/2)), 1+tx.spareFDs), 1)
	tx.spareFDs -= parts - 1
	return parts
}

// fdsNeeded counts the fds a message takes with one memfd per region: two per send right (its
// channel and its port's counter; a send lane's first token takes one more, from the spare
// fds: sendToken), one per send-once right, region and memfd body.
func fdsNeeded(m *Msg, localDisp uint8) int {
	rightFDs := func(disp uint8) int {
		switch disp {
		case dispCopySend, dispMoveSend, dispMakeSend:
			return 2
		case dispMakeSendOnce, dispMoveSendOnce:
			return 1
		}
		return 0
	}
	n := 0
	if m.Local != abi.MACH_PORT_NULL {
		n += rightFDs(localDisp)
	}
	for _, d := range m.Descs {
		switch {
		case d.Memory && d.Size > 0:
			n++
		case !d.Memory && d.Name != abi.MACH_PORT_NULL && d.Name != abi.MACH_PORT_DEAD:
			n += rightFDs(d.Disp)
		}
	}
	if len(m.Body) > inlineBodyMax {
		n++
	}
	return n
}

// fillMemory writes out-of-line data and a large body into sealed memfds.
func (tx *transfer) fillMemory(body []byte) error {
	for _, mc := range tx.mem {
		if mc.dealloc && mc.parts == 1 {
			if fd, ok := donatable(mc.addr, mc.size); ok {
				tx.fds[mc.index], tx.owned[mc.index] = fd, true // VMDeallocate recycles the memfd after the send
				continue
			}
		}
		if err := tx.copyToMemfds(mc); err != nil {
			return err
		}
	}
	tx.dg.bodyLen = uint32(len(body))
	if len(body) > inlineBodyMax {
		fd, err := sealedMemfd(body)
		if err != nil {
			return err
		}
		tx.dg.bodyFD = tx.addFD(fd)
		tx.owned[tx.dg.bodyFD] = true
	} else {
		tx.dg.body = body
	}
	tx.dg.nfds = len(tx.fds)
	return nil
}

// copyToMemfds copies one region into its memfds, the parts in parallel. A region of one part
// of poolMin to poolMax bytes goes through a pooled memfd of its channel when one is free.
func (tx *transfer) copyToMemfds(mc memCopy) error {
	if mc.parts == 1 {
		if s, ok := pooledMemfd(tx.dest, mc.data); ok {
			tx.fds[mc.index] = s.ro // the pool's: not closed after the send
			tx.pooled = append(tx.pooled, s)
			return nil
		}
	}
	fill := func(i int) error {
		off, n := memPart(mc.size, mc.parts, i)
		fd, err := sealedMemfd(mc.data[off : off+n])
		if err == nil {
			idx := int(mc.index) + i
			tx.fds[idx], tx.owned[idx] = fd, true
		}
		return err
	}
	if mc.parts == 1 {
		return fill(0)
	}
	errs := make([]error, mc.parts)
	var wg sync.WaitGroup
	for i := 1; i < mc.parts; i++ {
		wg.Go(func() { errs[i] = fill(i) })
	}
	errs[0] = fill(0)
	wg.Wait()
	return errors.Join(errs...)
}

// ignoringEINTR calls f until it fails with something other than EINTR.
func ignoringEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// memfdCreate is unix.MemfdCreate; tests replace it to make a copy fail part way.
var memfdCreate = unix.MemfdCreate

func sealedMemfd(data []byte) (int, error) {
	fd, err := memfdCreate("machport-ool", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, err
	}
	// A signal (Go's preemption, or the SIGURG that interrupts a waiting receive) may interrupt a
	// large write: retried, not failed. The writes themselves size the memfd (no ftruncate: one
	// system call less per message).
	for off := 0; off < len(data); {
		var n int
		err := ignoringEINTR(func() (err error) { n, err = unix.Pwrite(fd, data[off:], int64(off)); return err })
		if err != nil {
			unix.Close(fd)
			return -1, err
		}
		off += n
	}
	_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE|unix.F_SEAL_SEAL)
	if errors.Is(err, unix.EBUSY) {
		// F_SEAL_WRITE waits for every page's extra references to go (mm/memfd.c,
		// memfd_wait_for_pins: per-CPU LRU batches, page migration) and gives up with EBUSY after
		// about 150 ms; on a loaded machine that happens. Nobody else can write this memfd anyway:
		// it was written with pwrite and never mapped, and F_SEAL_FUTURE_WRITE refuses new writes
		// and writable mappings at once. The receiver treats it as memory a sender could still
		// change (rxcopy.go), as a donated region.
		_, err = unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS,
			unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_FUTURE_WRITE|unix.F_SEAL_SEAL)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// deliver sends the datagram, waiting for a queue slot and for socket space within timeout.
func (tx *transfer) deliver(dest *sendChan, timeout time.Duration) int32 {
	dl := deadline{timeout: timeout} // one for both waits, started by the first (see deadline)
	// A message on a send-once right is queued whatever the queue limit (xnu's ipc_mqueue_send
	// never blocks one), so only send rights count.
	counted := dest.ctr != nil && !dest.sendOnce
	if counted && dest.ctr.ensure() != nil {
		return abi.MACH_SEND_INVALID_DEST // a peer gave a counter that is not one
	}
	if counted {
		switch dest.ctr.acquire(&dl, func() bool { return !dest.dead() }) {
		case acquireTimedOut:
			return abi.MACH_SEND_TIMED_OUT
		case acquirePortDead:
			return abi.MACH_SEND_INVALID_DEST
		case acquirePortDiedWaiting:
			// xnu treats a destination that dies while the sender waits as a delivery: the
			// message is destroyed and the send succeeds.
			return abi.MACH_MSG_SUCCESS
		}
	}
	tx.wire = tx.dg.encode(tx.wire[:0])
	buf := tx.wire
	var oob []byte
	if len(tx.fds) > 0 {
		tx.oob = appendRights(tx.oob[:0], tx.fds)
		oob = tx.oob
	}
	for {
		err := unix.Sendmsg(dest.fd, buf, oob, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		switch {
		case err == nil:
			return abi.MACH_MSG_SUCCESS
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN) && dest.sendOnce:
			// A send-once channel carries one message, so its socket is full only when a peer
			// forged the right from a socket it filled. On Mach the message would be queued at
			// once (a server replies with a blocking send for that reason), so it must not wait
			// here: it is dropped, and the send succeeds as xnu's ipc_kmsg_send succeeds for a
			// port that died: "pretend it got sent and was then immediately destroyed".
			tx.dropped = true
			sendOnceDrops.Add(1)
			return abi.MACH_MSG_SUCCESS
		case errors.Is(err, unix.EAGAIN):
			left := dl.left()
			if timeout >= 0 && left <= 0 {
				break
			}
			if waitWritable(dest.fd, left) {
				continue
			}
		case errors.Is(err, unix.EPIPE), errors.Is(err, unix.ECONNREFUSED), errors.Is(err, unix.ECONNRESET):
			if counted {
				dest.ctr.release()
			}
			return abi.MACH_SEND_INVALID_DEST
		case errors.Is(err, unix.EMSGSIZE), errors.Is(err, unix.ENOBUFS), errors.Is(err, unix.ENOMEM):
			if counted {
				dest.ctr.release()
			}
			return abi.MACH_SEND_NO_BUFFER
		default:
			if counted {
				dest.ctr.release()
			}
			return abi.MACH_SEND_INVALID_DEST
		}
		if counted {
			dest.ctr.release()
		}
		return abi.MACH_SEND_TIMED_OUT
	}
}

// appendRights appends an SCM_RIGHTS control message carrying fds.
func appendRights(b []byte, fds []int) []byte {
	datalen := len(fds) * 4
	n := unix.CmsgSpace(datalen)
	start := len(b)
	b = append(b, make([]byte, n)...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[start]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SCM_RIGHTS
	h.SetLen(unix.CmsgLen(datalen))
	data := b[start+unix.CmsgLen(0):]
	for i, fd := range fds {
		binary.NativeEndian.PutUint32(data[4*i:], uint32(int32(fd)))
	}
	return b
}

func waitWritable(fd int, timeout time.Duration) bool {
	ms := -1
	if timeout >= 0 {
		ms = int((timeout + time.Millisecond - 1) / time.Millisecond)
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, ms)
	return err == nil && n > 0 || errors.Is(err, unix.EINTR)
}

func (tx *transfer) commit() {
	if tx.spends != nil && !tx.dropped {
		tx.spends.spent = true // used: its release tells the port nothing
	}
	tx.commitTaken()
	for _, f := range tx.moves {
		f()
	}
}

// destroyCarried destroys what a dropped message carried, as mach_msg_destroy would, once
// commit took it from the space. Send and send-once rights and memory need nothing more: the
// transfer's holds and memfds close after the send as after any other (a send-once right made
// for the message then brings its port MACH_NOTIFY_SEND_ONCE, a last send right no-senders),
// and memory sent with deallocate is deallocated. A receive right moving inside this process
// would live on unreachable: its port dies. Called with sp.mu held.
func (tx *transfer) destroyCarried() {
	for _, it := range tx.issued {
		// A send-once right made on a lane of this process's port dies here, as a channel's
		// write end closing unused would make it.
		if _, ok := it.l.tokens[it.tok]; ok {
			delete(it.l.tokens, it.tok)
			it.l.rc.p.inject(kernelMsg(abi.MACH_NOTIFY_SEND_ONCE, nil))
		}
	}
	for _, l := range tx.sendIssued {
		// A send right's token on a send lane goes with the message.
		l.outstanding = max(l.outstanding-1, 0)
		sp.settleSendLane(l)
	}
	for _, r := range tx.dg.descs {
		if r.kind != kindReceive {
			continue
		}
		if p := sp.tokens[r.token]; p != nil {
			delete(sp.tokens, r.token)
			p.kill()
		}
	}
}

func (tx *transfer) rollback() {
	// Last done, first undone: a receive right moved after a MAKE_SEND of it gets its make-send
	// count back before the MAKE_SEND takes its count out.
	for i := len(tx.undos) - 1; i >= 0; i-- {
		tx.undos[i]()
	}
	tx.undoTaken()
	for _, it := range tx.issued {
		delete(it.l.tokens, it.tok)
	}
	for _, l := range tx.sendIssued {
		l.outstanding = max(l.outstanding-1, 0)
		sp.settleSendLane(l)
	}
	clear(tx.sendIssued)
	tx.sendIssued = tx.sendIssued[:0]
	tx.dropAdopts()
}

// abort releases what the transfer held: the channels it used, the memfds it made and the
// pooled memfds it locked.
func (tx *transfer) abort() {
	sp.mu.Lock()
	tx.release()
	tx.releaseRetained()
	sp.mu.Unlock()
	tx.unlockPooled()
	tx.poolsDone()
	tx.closeOwned()
	tx.ss.discard()
}

// unlockPooled releases the pooled memfds locked for a message that did not go.
func (tx *transfer) unlockPooled() {
	for _, s := range tx.pooled {
		unlockPooled(s.ro)
	}
}

// poolsDone ends the send's use of its pooled memfds (their lock, if the message went, stays
// until its receiver has its copy), once nothing of the send passes their descriptions any more.
func (tx *transfer) poolsDone() {
	for _, s := range tx.pooled {
		s.done()
	}
	clear(tx.pooled)
	tx.pooled = tx.pooled[:0]
}

// release drops the transfer's holds on channels. Called with sp.mu held.
func (tx *transfer) release() {
	for _, h := range tx.holds {
		h.put()
	}
	tx.holds = tx.holds[:0]
}

// closeOwned closes the memfds the transfer made.
func (tx *transfer) closeOwned() {
	for i, fd := range tx.fds {
		if tx.owned[i] {
			unix.Close(fd)
		}
	}
	tx.fds, tx.owned = tx.fds[:0], tx.owned[:0]
}

var sendOnceDrops atomic.Uint64

// SendOnceDrops counts the messages on send-once rights dropped because their channel was full.
func SendOnceDrops() uint64 { return sendOnceDrops.Load() }
