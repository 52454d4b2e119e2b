//go:build linux

package emu

import (
	"crypto/rand"
	"encoding/binary"
	"sync"

	"github.com/machport/machport/internal/abi"
	"golang.org/x/sys/unix"
)

// Right types of received ports (MACH_MSG_TYPE_PORT_*), and dispositions.
const (
	typePortReceive  = abi.MACH_MSG_TYPE_PORT_RECEIVE
	typePortSend     = abi.MACH_MSG_TYPE_PORT_SEND
	typePortSendOnce = abi.MACH_MSG_TYPE_PORT_SEND_ONCE

	dispMoveReceive  = abi.MACH_MSG_TYPE_MOVE_RECEIVE
	dispMoveSend     = abi.MACH_MSG_TYPE_MOVE_SEND
	dispMoveSendOnce = abi.MACH_MSG_TYPE_MOVE_SEND_ONCE
	dispCopySend     = abi.MACH_MSG_TYPE_COPY_SEND
	dispMakeSend     = abi.MACH_MSG_TYPE_MAKE_SEND
	dispMakeSendOnce = abi.MACH_MSG_TYPE_MAKE_SEND_ONCE
)

// urefsMax is MACH_PORT_UREFS_MAX: xnu pegs user references there instead of failing.
const urefsMax = 1<<16 - 1

// portID identifies a port across processes, so that send rights to one port coalesce under one
// name, as in a Mach IPC space.
type portID [16]byte

func newPortID() portID {
	var id portID
	_, _ = rand.Read(id[:])
	return id
}

// sendChan is the sending side of a channel: a write end, shared by every holder of the right.
// A send right held in its port's own process is a reference to the port instead (local): its
// messages go straight into the port's queue, and its fd is -1 until the right is first carried
// to another process, which makes the channel that carries it (exportTo).
type sendChan struct {
	local    *port
	fd       int
	ctr      *counter // the port's queue counter; nil for send-once channels
	ownsCtr  bool
	id       portID
	sendOnce bool
	refs     int    // entries and sends in progress that use fd
	rc       *rchan // the read end, when this process made the channel
	// A send-once right on a lane (lane.go): fd is the lane's, shared; token names the right;
	// spent is set once a message used it (else its release tells the port with a drop).
	lane  *remoteLane
	token uint64
	spent bool
	// A send right made of a send lane's token (sendlane.go): fd is the lane's data channel,
	// shared (slane). debt and debts are the tokens the right holds, of any lane, given back
	// when it goes.
	slane *remoteSendLane
	debt  tokenDebt
	debts []tokenDebt
}

func (c *sendChan) get() *sendChan { c.refs++; return c }

// put drops one holder; the last one closes the write end (which is how the receiver learns a
// sender went away).
func (c *sendChan) put() {
	c.refs--
	if c.refs == 0 && c.local != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
			if c.rc != nil {
				// The channel made when the right was carried out: if no copy of its write
				// end is left anywhere (held or in flight), it hung up with this close, and
				// no-senders must come now, as for a right that never went out, not when
				// the monitor sees the hang-up.
				sp.hungUpNow(c.local, c.rc)
			}
		}
		if c.ownsCtr {
			c.ctr.close()
		}
		c.local.localSenders--
		sp.checkNoSenders(c.local)
		return
	}
	if c.refs == 0 && c.lane != nil {
		if !c.spent {
			laneCtl(c.fd, laneDrop, c.token, -1)
		}
		c.lane.put()
		return
	}
	if c.refs == 0 {
		if c.slane != nil {
			c.slane.put()
		} else {
			unix.Close(c.fd)
			if rc := c.localRead(); rc != nil {
				// A send-once right to a port of this process, made here: if that was the
				// last copy of its write end, the right is destroyed now.
				sp.sendOnceGone(rc)
			}
		}
		if c.ownsCtr {
			c.ctr.close()
		}
		c.payDebts()
	}
}

// localRead returns the read end of a send-once channel this process made for a port of its
// own, nil for any other right. Releasing such a right looks at the channel again once the name
// is gone (sendOnceGone): a dead-name request on the name watches a copy of the write end, which
// only the name's release (dropIfEmpty, portDeleted) closes.
func (c *sendChan) localRead() *rchan {
	if c.sendOnce && c.rc != nil {
		return c.rc
	}
	return nil
}

// dead reports whether the channel's reader is gone.
func (c *sendChan) dead() bool {
	if c.local != nil {
		return c.local.dead
	}
	fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLERR) != 0
}

// entry is one name in the space and the rights it denotes.
type entry struct {
	name     uint32
	recv     *port
	pset     *pset
	sendRefs uint32
	send     *sendChan // set while sendRefs > 0
	sonce    *sendChan
	deadRefs uint32
	dn       *deadNameReq
	id       portID // the port a receive or send right names
}

type deadNameReq struct {
	notify  *port
	monitor uint64 // monitor registration of the watched write end
}

func (e *entry) typ() uint32 {
	var t uint32
	if e.recv != nil {
		t |= abi.MACH_PORT_TYPE_RECEIVE
	}
	if e.sendRefs > 0 {
		t |= abi.MACH_PORT_TYPE_SEND
	}
	if e.sonce != nil {
		t |= abi.MACH_PORT_TYPE_SEND_ONCE
	}
	if e.deadRefs > 0 {
		t |= abi.MACH_PORT_TYPE_DEAD_NAME
	}
	if e.pset != nil {
		t |= abi.MACH_PORT_TYPE_PORT_SET
	}
	if e.dn != nil {
		t |= abi.MACH_PORT_TYPE_DNREQUEST
	}
	return t
}

func (e *entry) empty() bool {
	return e.recv == nil && e.pset == nil && e.sendRefs == 0 && e.sonce == nil && e.deadRefs == 0
}

// space is this process's IPC space.
type space struct {
	mu      sync.Mutex
	entries map[uint32]*entry
	next    uint32
	byPort  map[portID]uint32 // the name holding a port's receive and/or send rights
	tokens  map[uint64]*port  // receive rights moved inside this process, in flight
	lanes   map[uint64]*remoteLane
	// sendLanes are the send lanes of other processes' ports this process has open, by key;
	// keptSendLanes counts those it keeps (sendlane.go).
	sendLanes     map[uint64]*remoteSendLane
	keptSendLanes int
}

var sp = &space{entries: map[uint32]*entry{}, byPort: map[portID]uint32{}, tokens: map[uint64]*port{},
	lanes: map[uint64]*remoteLane{}, sendLanes: map[uint64]*remoteSendLane{}}

// newToken makes an unguessable token for a receive right travelling inside this process, so a
// peer cannot name one in a forged message.
func (s *space) newToken(p *port) uint64 {
	for {
		var b [8]byte
		_, _ = rand.Read(b[:])
		tok := binary.LittleEndian.Uint64(b[:])
		if tok != 0 && s.tokens[tok] == nil {
			s.tokens[tok] = p
			return tok
		}
	}
}

// newName allocates a name shaped like Mach's (index << 8 | generation).
func (s *space) newName() *entry {
	serveTable()   // the first name starts serving the table to inspectors (table.go)
	startMonitor() // and the monitor of hang-ups
	s.next++
	e := &entry{name: s.next<<8 | 3}
	s.entries[e.name] = e
	return e
}

// drop removes an entry that denotes nothing any more.
func (s *space) dropIfEmpty(e *entry) {
	if !e.empty() {
		return
	}
	if e.dn != nil {
		// The name is released while its dead-name request is armed: the request's send-once
		// right carries MACH_NOTIFY_PORT_DELETED to the notify port, whether the release was a
		// deallocate or a mod_refs delta to zero (xnu's ipc_right_dealloc and ipc_right_delta:
		// ipc_right_request_cancel, then ipc_notify_port_deleted). A move in a message keeps
		// the request aside instead (dropMoved).
		req := e.dn
		e.dn = nil
		s.portDeleted(e.name, req)
	}
	delete(s.entries, e.name)
	if n, ok := s.byPort[e.id]; ok && n == e.name {
		delete(s.byPort, e.id)
	}
}

// dropMoved frees a name a send's copy-in emptied by moving its last right into the message,
// and returns its dead-name request, kept aside unfired: xnu's ipc_right_copyin cancels the
// request into *sorightp, and ipc_kmsg_copyin_header sends MACH_NOTIFY_PORT_DELETED on it only
// once the whole copy-in succeeded. The send's commit fires it (portDeleted); a send that fails
// gives it back with the right (restoreDeadName). Called with s.mu held.
func (s *space) dropMoved(e *entry) *deadNameReq {
	if !e.empty() {
		return nil
	}
	req := e.dn
	e.dn = nil
	s.dropIfEmpty(e)
	return req
}

// portDeleted fires a dead-name request whose name was released: MACH_NOTIFY_PORT_DELETED
// (xnu's ipc_notify_port_deleted). Called with s.mu held.
func (s *space) portDeleted(name uint32, req *deadNameReq) {
	monitorRemove(req.monitor)
	var body [12]byte // NDR record, then the name
	binary.LittleEndian.PutUint32(body[8:], name)
	req.notify.inject(kernelMsg(abi.MACH_NOTIFY_PORT_DELETED, body[:]))
}

// restoreDeadName puts back the dead-name request dropMoved kept aside, on the entry a failed
// send gave its right back to. The port may have died meanwhile: its monitor then found no
// entry and did nothing, so the entry is looked at now, which fires the request if it did.
// Called with s.mu held.
func (s *space) restoreDeadName(e *entry, req *deadNameReq) {
	if req == nil {
		return
	}
	e.dn = req
	s.refreshDead(e)
}

// refreshDead turns send and send-once rights whose port died into dead names, as Mach shows
// them (lazily: the emulation learns of the death when it looks).
func (s *space) refreshDead(e *entry) {
	if e.recv != nil {
		return
	}
	if e.send != nil && e.send.dead() {
		s.becomeDead(e, e.sendRefs)
		e.send.put()
		e.send, e.sendRefs = nil, 0
	}
	if e.sonce != nil && e.sonce.dead() {
		s.becomeDead(e, 1)
		e.sonce.put()
		e.sonce = nil
	}
	if e.dn != nil && e.deadRefs > 0 && e.sendRefs == 0 && e.sonce == nil {
		// xnu fires the request when the port dies (ipc_port_destroy), before the name can be
		// released: a release must then find a dead name, not an armed request.
		s.fireDeadName(e)
	}
}

func (s *space) becomeDead(e *entry, refs uint32) {
	e.deadRefs += refs
	if n, ok := s.byPort[e.id]; ok && n == e.name {
		delete(s.byPort, e.id)
	}
}

// liveEntry looks a name up, turning rights whose port died into dead names first. Called with
// sp.mu held; nil for an unknown name.
func (s *space) liveEntry(name uint32) *entry {
	e := s.entries[name]
	if e != nil {
		s.refreshDead(e)
	}
	return e
}

// Allocate is mach_port_allocate for receive rights, port sets and dead names.
func Allocate(right uint32) (uint32, int32) {
	switch right {
	case abi.MACH_PORT_RIGHT_RECEIVE:
		return Construct(0, 0, 0)
	case abi.MACH_PORT_RIGHT_PORT_SET:
		ps, err := newPset()
		if err != nil {
			return 0, abi.KERN_RESOURCE_SHORTAGE
		}
		sp.mu.Lock()
		defer sp.mu.Unlock()
		e := sp.newName()
		e.pset = ps
		return e.name, abi.KERN_SUCCESS
	case abi.MACH_PORT_RIGHT_DEAD_NAME:
		sp.mu.Lock()
		defer sp.mu.Unlock()
		e := sp.newName()
		e.deadRefs = 1
		return e.name, abi.KERN_SUCCESS
	}
	return 0, abi.KERN_INVALID_VALUE
}

// Construct is mach_port_construct.
func Construct(flags, qlimit uint32, context uint64) (uint32, int32) {
	if flags&abi.MPO_QLIMIT == 0 {
		qlimit = abi.MACH_PORT_QLIMIT_DEFAULT
	}
	if qlimit > abi.MACH_PORT_QLIMIT_MAX {
		return 0, abi.KERN_INVALID_VALUE
	}
	p, err := newPort(qlimit)
	if err != nil {
		return 0, abi.KERN_RESOURCE_SHORTAGE
	}
	p.context = context
	p.guarded = flags&abi.MPO_CONTEXT_AS_GUARD != 0
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.newName()
	e.recv, e.id, p.name = p, p.id, e.name
	sp.byPort[p.id] = e.name
	if flags&abi.MPO_INSERT_SEND_RIGHT != 0 {
		if kr := sp.makeSend(e); kr != abi.KERN_SUCCESS {
			sp.destroyReceive(e)
			return 0, kr
		}
	}
	return e.name, abi.KERN_SUCCESS
}

// makeSend adds a send right under a receive right's name (MAKE_SEND).
func (s *space) makeSend(e *entry) int32 {
	if e.sendRefs >= urefsMax {
		return abi.KERN_SUCCESS // pegged, as xnu does
	}
	if e.send == nil {
		e.send = e.recv.newLocalSend()
	}
	e.sendRefs++
	e.recv.mscount++
	e.recv.nsQuiet = false
	return abi.KERN_SUCCESS
}

// Destruct is mach_port_destruct.
func Destruct(name uint32, srdelta int32, guard uint64) int32 {
	receiveDying(name, guard, true)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.entries[name]
	if e == nil {
		return abi.KERN_INVALID_NAME
	}
	if e.recv == nil {
		return abi.KERN_INVALID_RIGHT
	}
	if srdelta > 0 {
		return abi.KERN_INVALID_VALUE
	}
	if e.recv.guarded && e.recv.context != guard {
		return abi.KERN_INVALID_ARGUMENT
	}
	if srdelta < 0 {
		if uint32(-srdelta) > e.sendRefs {
			return abi.KERN_INVALID_RIGHT
		}
		sp.dropSend(e, uint32(-srdelta))
	}
	sp.destroyReceive(e)
	return abi.KERN_SUCCESS
}

func (s *space) dropSend(e *entry, n uint32) {
	dropRefs(&e.sendRefs, n)
	if e.sendRefs == 0 && e.send != nil {
		e.send.put()
		e.send = nil
	}
}

// giveBack puts back an entry that a send's copy-in freed when it moved the entry's last right,
// for the send failed (names are never reused: newName). Called with s.mu held.
func (s *space) giveBack(e *entry) {
	if s.entries[e.name] != e {
		s.entries[e.name] = e
	}
}

// giveBackSend gives back the send right reference a failed send moved out of e (whole: the
// last one, with the entry's hold on c), and returns the name that holds it. Send rights
// coalesce: if the port was named again meanwhile, under another name, the reference goes there.
// Called with s.mu held.
func (s *space) giveBackSend(e *entry, c *sendChan, whole bool) uint32 {
	if s.entries[e.name] != e {
		if n, ok := s.byPort[e.id]; ok && s.entries[n] != nil && n != e.name {
			e = s.entries[n]
		} else {
			s.giveBack(e)
		}
	}
	switch {
	case e.send != nil:
		e.sendRefs, _ = addRefs(e.sendRefs, 1)
		if whole {
			c.put() // the name holds the port's send right again: one hold is enough
		}
	default:
		if !whole {
			c.get() // the entry let go of its hold meanwhile
		}
		e.send, e.sendRefs = c, 1
		if _, ok := s.byPort[e.id]; !ok {
			s.byPort[e.id] = e.name
		}
	}
	return e.name
}

// giveBackReceive gives back the receive right a failed send moved out of e, under e's name or,
// if the port was named again meanwhile (a send right to it received), under that name, as
// copyoutReceive would name it; it returns the name. Called with s.mu held.
func (s *space) giveBackReceive(e *entry, p *port) uint32 {
	if s.entries[e.name] != e {
		if n, ok := s.byPort[p.id]; ok && s.entries[n] != nil && s.entries[n].recv == nil {
			e = s.entries[n]
		} else {
			s.giveBack(e)
		}
	}
	e.recv, p.name = p, e.name
	s.byPort[p.id] = e.name
	return e.name
}

// Deallocate is mach_port_deallocate: one user reference of a send, send-once or dead-name right.
func Deallocate(name uint32) int32 {
	if name == abi.MACH_PORT_NULL || name == abi.MACH_PORT_DEAD {
		return abi.KERN_SUCCESS
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.liveEntry(name)
	if e == nil {
		return abi.KERN_INVALID_NAME
	}
	switch {
	case e.sendRefs > 0:
		sp.dropSend(e, 1)
	case e.sonce != nil:
		if rc := e.sonce.localRead(); rc != nil {
			defer sp.sendOnceGone(rc) // after dropIfEmpty below (see localRead)
		}
		e.sonce.put()
		e.sonce = nil
	case e.deadRefs > 0:
		dropRefs(&e.deadRefs, 1)
	case e.pset != nil:
		// xnu's ipc_right_dealloc destroys a port set (MACH_PORT_TYPE_PORT_SET: ipc_pset_destroy);
		// tests/mach_port_deallocate_21692215.c checks it.
		e.pset.destroy()
		e.pset = nil
	default:
		return abi.KERN_INVALID_RIGHT
	}
	sp.dropIfEmpty(e)
	return abi.KERN_SUCCESS
}

// ModRefs is mach_port_mod_refs.
func ModRefs(name, right uint32, delta int32) int32 {
	if right >= abi.MACH_PORT_RIGHT_NUMBER {
		return abi.KERN_INVALID_VALUE
	}
	if name == abi.MACH_PORT_NULL || name == abi.MACH_PORT_DEAD {
		// xnu's mach_port_mod_refs: SEND and SEND_ONCE on an invalid name succeed and change
		// nothing, as mach_port_deallocate does; other rights have no such name.
		if right == abi.MACH_PORT_RIGHT_SEND || right == abi.MACH_PORT_RIGHT_SEND_ONCE {
			return abi.KERN_SUCCESS
		}
		return abi.KERN_INVALID_NAME
	}
	if right == abi.MACH_PORT_RIGHT_RECEIVE && delta < 0 {
		receiveDying(name, 0, false)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.liveEntry(name)
	if e == nil {
		return abi.KERN_INVALID_NAME
	}
	if right == abi.MACH_PORT_RIGHT_SEND_ONCE && e.sonce != nil {
		if rc := e.sonce.localRead(); rc != nil {
			defer sp.sendOnceGone(rc) // after dropIfEmpty (see localRead)
		}
	}
	defer sp.dropIfEmpty(e)
	switch right {
	case abi.MACH_PORT_RIGHT_RECEIVE:
		if e.recv != nil && e.recv.guarded && delta == -1 {
			return abi.KERN_INVALID_RIGHT // xnu also raises a fatal guard exception
		}
		return dropSingle(e.recv != nil, delta, func() { sp.destroyReceive(e) })
	case abi.MACH_PORT_RIGHT_PORT_SET:
		return dropSingle(e.pset != nil, delta, func() { e.pset.destroy(); e.pset = nil })
	case abi.MACH_PORT_RIGHT_SEND_ONCE:
		return dropSingle(e.sonce != nil, delta, func() { e.sonce.put(); e.sonce = nil })
	case abi.MACH_PORT_RIGHT_SEND:
		if e.sendRefs == 0 {
			return abi.KERN_INVALID_RIGHT
		}
		n, kr := addRefs(e.sendRefs, delta)
		if kr != abi.KERN_SUCCESS {
			return kr
		}
		if n < e.sendRefs {
			sp.dropSend(e, e.sendRefs-n)
		} else {
			e.sendRefs = n
		}
	case abi.MACH_PORT_RIGHT_DEAD_NAME:
		if e.deadRefs == 0 {
			return abi.KERN_INVALID_RIGHT
		}
		n, kr := addRefs(e.deadRefs, delta)
		if kr != abi.KERN_SUCCESS {
			return kr
		}
		e.deadRefs = n
	default:
		// MACH_PORT_RIGHT_LABELH (5), below MACH_PORT_RIGHT_NUMBER: xnu's ipc_right_delta
		// answers it with invalid_right, not KERN_INVALID_VALUE.
		return abi.KERN_INVALID_RIGHT
	}
	return abi.KERN_SUCCESS
}

// dropSingle is mod_refs on a right that has no user-reference count (receive, send-once,
// port set): delta 0 or -1 only.
func dropSingle(present bool, delta int32, release func()) int32 {
	switch {
	case !present:
		return abi.KERN_INVALID_RIGHT
	case delta == -1:
		release()
	case delta != 0:
		return abi.KERN_INVALID_VALUE
	}
	return abi.KERN_SUCCESS
}

// dropRefs takes n user references from *refs as xnu does everywhere it releases them
// (mach_port_deallocate, a MOVE_SEND in a message, mach_port_destruct, mach_port_mod_refs): a
// count pegged at MACH_PORT_UREFS_MAX stays there unless all of it goes at once.
func dropRefs(refs *uint32, n uint32) {
	if *refs == urefsMax && n != urefsMax {
		return
	}
	*refs -= n
}

// addRefs applies delta to a user-reference count as xnu's ipc_right_delta does: below zero is
// KERN_INVALID_VALUE; above MACH_PORT_UREFS_MAX the count is pegged at the maximum, and a pegged
// count changes only by a delta that removes all of it (any other succeeds and changes nothing).
func addRefs(refs uint32, delta int32) (uint32, int32) {
	if delta < -urefsMax || delta > urefsMax {
		return refs, abi.KERN_INVALID_VALUE
	}
	if refs == urefsMax {
		if delta == -urefsMax {
			return 0, abi.KERN_SUCCESS
		}
		return refs, abi.KERN_SUCCESS
	}
	n := int64(refs) + int64(delta)
	switch {
	case n < 0:
		return refs, abi.KERN_INVALID_VALUE
	case n > urefsMax:
		return urefsMax, abi.KERN_SUCCESS
	}
	return uint32(n), abi.KERN_SUCCESS
}

// GetRefs is mach_port_get_refs.
func GetRefs(name, right uint32) (uint32, int32) {
	if right >= abi.MACH_PORT_RIGHT_NUMBER {
		return 0, abi.KERN_INVALID_VALUE
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.liveEntry(name)
	if e == nil {
		return 0, abi.KERN_INVALID_NAME
	}
	switch right {
	case abi.MACH_PORT_RIGHT_RECEIVE:
		return b2u(e.recv != nil), abi.KERN_SUCCESS
	case abi.MACH_PORT_RIGHT_SEND:
		return e.sendRefs, abi.KERN_SUCCESS
	case abi.MACH_PORT_RIGHT_SEND_ONCE:
		return b2u(e.sonce != nil), abi.KERN_SUCCESS
	case abi.MACH_PORT_RIGHT_PORT_SET:
		return b2u(e.pset != nil), abi.KERN_SUCCESS
	case abi.MACH_PORT_RIGHT_DEAD_NAME:
		return e.deadRefs, abi.KERN_SUCCESS
	}
	return 0, abi.KERN_SUCCESS
}

func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// Type is mach_port_type.
func Type(name uint32) (uint32, int32) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.liveEntry(name)
	if e == nil {
		return 0, abi.KERN_INVALID_NAME
	}
	return e.typ(), abi.KERN_SUCCESS
}

// InsertRight is mach_port_insert_right within this task: a send right under its own name.
func InsertRight(name, poly, disp uint32) int32 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.entries[poly]
	if e == nil {
		return abi.KERN_INVALID_NAME
	}
	if name != poly {
		return sp.insertElsewhere(e, name, disp)
	}
	sp.refreshDead(e)
	switch disp {
	case dispMakeSend:
		if e.recv == nil {
			return abi.KERN_INVALID_RIGHT
		}
		return sp.makeSend(e)
	case dispCopySend:
		if e.sendRefs == 0 {
			return abi.KERN_INVALID_RIGHT
		}
		e.sendRefs, _ = addRefs(e.sendRefs, 1)
		return abi.KERN_SUCCESS
	case dispMoveSend, dispMoveSendOnce, dispMoveReceive:
		return abi.KERN_SUCCESS // moving a right to the same name in the same space: no change
	}
	return abi.KERN_INVALID_VALUE
}

// insertElsewhere answers mach_port_insert_right of poly's right under another name, which the
// emulation never does. The answers are xnu's: ipc_entry_alloc_name refuses a name whose
// generation's low bits are not 0b11 with KERN_INVALID_VALUE, then index 0 and a name
// whose index holds a name of another generation with KERN_FAILURE (ports are not renamed);
// then ipc_object_copyout_name finds the port already named in the space (ipc_right_reverse)
// and answers KERN_RIGHT_EXISTS, even when name denotes another port
// (tests/mach_port_insert_right.c). Only a right the copy-in takes out of the space entirely (a
// send-once right, the last reference of a send right) is not named any more: then a name in
// use is KERN_NAME_EXISTS (ipc_right_inuse), and a free one, where xnu would rename the right, is
// refused with KERN_FAILURE (a documented difference). Called with sp.mu held.
func (s *space) insertElsewhere(e *entry, name, disp uint32) int32 {
	if name&3 != 3 {
		// Current xnu's ipc_entry_alloc_name (osfmk/ipc/ipc_entry.c) checks the generation's two
		// low bits, always set in a name the kernel makes, before the index: KERN_INVALID_VALUE
		// (tests/mach_port_insert_right.c, name 122). Older xnu answered KERN_FAILURE.
		return abi.KERN_INVALID_VALUE
	}
	if name>>8 == 0 {
		return abi.KERN_FAILURE
	}
	if same := name>>8<<8 | 3; same != name && s.entries[same] != nil {
		return abi.KERN_FAILURE // every name the emulation gives has generation 3 (newName)
	}
	leaves := false
	switch disp {
	case dispMoveSendOnce:
		leaves = e.sonce != nil
	case dispMoveSend:
		leaves = e.recv == nil && e.sendRefs == 1
	}
	switch {
	case !leaves:
		return abi.KERN_RIGHT_EXISTS
	case s.entries[name] != nil:
		return abi.KERN_NAME_EXISTS
	}
	return abi.KERN_FAILURE
}

// ExtractRight is mach_port_extract_right within this task.
func ExtractRight(name, disp uint32) (uint32, uint32, int32) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.entries[name]
	if e == nil {
		return 0, 0, abi.KERN_INVALID_NAME
	}
	sp.refreshDead(e)
	switch disp {
	case dispMakeSendOnce:
		var so uint32
		kr := withChannel(setupSendOnce, func() *port {
			if e := sp.entries[name]; e != nil && e.recv != nil {
				return e.recv
			}
			return nil
		}, func(c *sendChan) int32 {
			if c == nil {
				if sp.entries[name] == nil {
					return abi.KERN_INVALID_NAME
				}
				return abi.KERN_INVALID_RIGHT
			}
			e := sp.newName()
			e.sonce, e.id = c, c.id
			so = e.name
			return abi.KERN_SUCCESS
		})
		if kr != abi.KERN_SUCCESS {
			return 0, 0, kr
		}
		return so, typePortSendOnce, abi.KERN_SUCCESS
	case dispMakeSend:
		if e.recv == nil {
			return 0, 0, abi.KERN_INVALID_RIGHT
		}
		return name, typePortSend, sp.makeSend(e)
	case dispCopySend:
		if e.sendRefs == 0 {
			return 0, 0, abi.KERN_INVALID_RIGHT
		}
		e.sendRefs, _ = addRefs(e.sendRefs, 1)
		return name, typePortSend, abi.KERN_SUCCESS
	case dispMoveSend:
		if e.sendRefs == 0 {
			return 0, 0, abi.KERN_INVALID_RIGHT
		}
		return name, typePortSend, abi.KERN_SUCCESS
	case dispMoveSendOnce:
		if e.sonce == nil {
			return 0, 0, abi.KERN_INVALID_RIGHT
		}
		return name, typePortSendOnce, abi.KERN_SUCCESS
	case dispMoveReceive:
		if e.recv == nil {
			return 0, 0, abi.KERN_INVALID_RIGHT
		}
		return name, typePortReceive, abi.KERN_SUCCESS
	}
	return 0, 0, abi.KERN_INVALID_VALUE
}

// Names is mach_port_names.
func Names() ([]uint32, []uint32) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	names := make([]uint32, 0, len(sp.entries))
	types := make([]uint32, 0, len(sp.entries))
	for n, e := range sp.entries {
		sp.refreshDead(e)
		names = append(names, n)
		types = append(types, e.typ())
	}
	return names, types
}
