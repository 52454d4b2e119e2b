package mach

import (
	"context"
	"sync"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
)

// The Darwin kernel through libSystem: the logic that calls internal/darwin's function
// variables. It has no build tag on purpose: on macOS kernel_darwin.go binds the variables to
// libSystem and installs it; on Linux the tests install a libSystem double behind the same
// variables (internal/darwin/libsystemdouble) and run the behavioural suite through this code.
// Status: builds for darwin/arm64 and darwin/amd64 and is checked against the macOS 13.3 SDK;
// executed on Linux against the double; it has not run on macOS yet.

// newDarwinKernel returns the kernel that calls libSystem through internal/darwin's bound
// variables, for the task whose mach_task_self_ is task.
func newDarwinKernel(task uint32) *darwinKernel { return &darwinKernel{task: task} }

// darwinKernel is the kernel seam over libSystem.
type darwinKernel struct {
	task uint32

	mu      sync.Mutex
	wakers  []*waker                     // idle wakers, reused; the oldest first
	trim    *time.Timer                  // destroys wakers idle too long (trimWakers)
	wakeOf  map[Name]*waker              // every waker by its wake port's name
	waiting map[Name]map[*waker]struct{} // cancellable receives by the right they wait on
	// sets records the port sets of the caller's that each receive right is a member of, as
	// this task made them through insertMember, extractMember and moveMember. The kernel cannot
	// tell them from the private wake-up sets (mps_pset is 0 or 1: xnu's
	// mach_port_get_status_helper), and a receive right that a failed send hands back has left
	// them all (ipc_right_copyin's ipc_port_clear_receiver); this is what puts it back.
	sets map[Name]map[Name]struct{}
}

func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// Both directions pass MACH_*_INTERRUPT, so that libsyscall does not silently retry an
// interrupted call (re-sending a pseudo-received buffer leaks its memory copies, and restarts the
// timeout); the portable layer retries with the remaining deadline instead.

func (k *darwinKernel) send(buf []byte, _ [][]byte, timeoutMS int) int32 {
	opt, timeout := int32(abi.MACH_SEND_MSG|abi.MACH_SEND_INTERRUPT), uint32(abi.MACH_MSG_TIMEOUT_NONE)
	if timeoutMS >= 0 {
		opt |= abi.MACH_SEND_TIMEOUT
		timeout = uint32(timeoutMS)
	}
	size := le.Uint32(buf[offSize:])
	var moved []movedReceive
	if Bits(le.Uint32(buf[offBits:])).Complex() {
		moved = k.movedReceives(buf[:size])
	}
	ret := darwin.MachMsg(ptr(buf), opt, size, 0, 0, timeout, 0)
	if len(moved) > 0 {
		k.afterMovingReceives(buf[:size], ret, moved)
	}
	return ret
}

// movedReceive is a receive right a message moves (MOVE_RECEIVE): the offsets of its descriptor
// and of its name in the message (both -1 for an entry of an out-of-line port array, whose name
// is not in the message).
type movedReceive struct {
	off, nameOff int
	name         Name
	sets         []Name
}

// movedReceives lists the receive rights msg moves, with the caller's sets each is in.
func (k *darwinKernel) movedReceives(msg []byte) []movedReceive {
	if len(msg) < baseSize {
		return nil
	}
	var moved []movedReceive
	off, count := baseSize, le.Uint32(msg[offCount:])
	add := func(off, nameOff int, name Name) {
		k.mu.Lock()
		var sets []Name
		for set := range k.sets[name] {
			sets = append(sets, set)
		}
		k.mu.Unlock()
		moved = append(moved, movedReceive{off: off, nameOff: nameOff, name: name, sets: sets})
	}
	for i := uint32(0); i < count && off+portDescriptorSize <= len(msg); i++ {
		typ, moves := DescriptorType(msg[off+descriptorTypeByte]), Disposition(msg[off+10]) == MoveReceive
		switch {
		case typ == PortDescriptorType:
			if moves {
				add(off, off, Name(le.Uint32(msg[off:])))
			}
			off += portDescriptorSize
			continue
		case off+oolDescriptorSize > len(msg):
		case typ == GuardedPortDescriptorType && moves:
			add(off, off+12, Name(le.Uint32(msg[off+12:])))
		case typ == OOLPortsDescriptorType && moves:
			// The array is this process's memory (the caller's Go memory, pinned by Send).
			if addr, n := le.Uint64(msg[off:]), le.Uint32(msg[off+12:]); addr != 0 {
				for _, name := range namesAt(addr, int(n)) {
					add(-1, -1, Name(name))
				}
			}
		}
		off += oolDescriptorSize
	}
	return moved
}

// afterMovingReceives settles the receive rights a send moved. Copy-in took each out of its
// sets and woke the threads blocked on it (ipc_port_clear_receiver, ipc_mqueue_changed), so
// receives waiting on it are woken here, whatever the outcome: they see where it went. A right
// the kernel handed back (a pseudo-receive: xnu's ipc_kmsg_copyout_pseudo), perhaps under a new
// name, is put back in the caller's sets it was in, as if the send had never been tried.
func (k *darwinKernel) afterMovingReceives(msg []byte, ret int32, moved []movedReceive) {
	returned := ret != abi.MACH_MSG_SUCCESS && classifySendFailure(ret) == sendReturned
	for _, mv := range moved {
		k.forgetSets(mv.name)
		switch {
		case returned && mv.off < 0:
			// An array entry: it came back in a new array, which the portable layer reads
			// (takeBack); it is not put back in its sets.
		case returned:
			back := Name(le.Uint32(msg[mv.nameOff:]))
			if Disposition(msg[mv.off+10]) == PortReceive && back.Valid() {
				for _, set := range mv.sets {
					if darwin.MachPortInsertMember(k.task, uint32(back), uint32(set)) == abi.KERN_SUCCESS {
						k.noteSet(back, set, true)
					}
				}
			}
		case ret != abi.MACH_MSG_SUCCESS:
			// Refused before copy-in, or destroyed with the message: the kernel says which.
			if pt, kr := k.portType(mv.name); kr == abi.KERN_SUCCESS && pt.Has(TypeReceive) {
				for _, set := range mv.sets {
					k.noteSet(mv.name, set, true)
				}
			}
		}
		k.wakeReceivers(mv.name)
	}
}

// noteSet records that name joined (or left) one of the caller's sets.
func (k *darwinKernel) noteSet(name, set Name, in bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if !in {
		delete(k.sets[name], set)
		if len(k.sets[name]) == 0 {
			delete(k.sets, name)
		}
		return
	}
	if k.sets == nil {
		k.sets = map[Name]map[Name]struct{}{}
	}
	if k.sets[name] == nil {
		k.sets[name] = map[Name]struct{}{}
	}
	k.sets[name][set] = struct{}{}
}

// forgetSets forgets name's memberships: its receive right is gone or left all its sets.
func (k *darwinKernel) forgetSets(name Name) {
	k.mu.Lock()
	delete(k.sets, name)
	k.mu.Unlock()
}

// inCallersSet reports whether name is in a set of the caller's, and whether a cancellable
// receive has it in a private set.
func (k *darwinKernel) inCallersSet(name Name) (inSet, waiting bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.sets[name]) > 0, len(k.waiting[name]) > 0
}

func (k *darwinKernel) rawReceive(name Name, buf []byte, large bool, trailer TrailerElements, timeoutMS int) int32 {
	opt, timeout := int32(abi.MACH_RCV_MSG|abi.MACH_RCV_INTERRUPT)|trailer.options(), uint32(abi.MACH_MSG_TIMEOUT_NONE)
	if large {
		opt |= abi.MACH_RCV_LARGE
	}
	if timeoutMS >= 0 {
		opt |= abi.MACH_RCV_TIMEOUT
		timeout = uint32(timeoutMS)
	}
	return darwin.MachMsg(ptr(buf), opt, 0, uint32(len(buf)), uint32(name), timeout, 0)
}

// receive blocks its OS thread in mach_msg. A cancellable ctx needs a way to wake it: a receive
// on a receive right waits on a private port set holding both the port and a private wake-up
// port, and cancellation sends an empty message to the wake-up port (the Ladybird/Chromium
// pattern). Closing, moving or re-homing the port wakes such receives too (wakeReceivers), so they
// see the change instead of waiting on a set that no longer holds the port.
//
// A receive on a caller's port set cannot take a private port into that set (any other receiver
// of the set could swallow the wake-up), so it waits in slices of at most setPollInterval and
// checks ctx between them.
func (k *darwinKernel) receive(ctx context.Context, name Name, buf []byte, large bool, trailer TrailerElements, timeoutMS int) int32 {
	if ctx.Done() == nil {
		return k.rawReceive(name, buf, large, trailer, timeoutMS)
	}
	if pt, _ := k.portType(name); pt.Has(TypePortSet) {
		return k.receiveSetPolling(ctx, name, buf, large, trailer, timeoutMS)
	}
	w, kr := k.getWaker()
	if kr != abi.KERN_SUCCESS {
		return k.receiveSetPolling(ctx, name, buf, large, trailer, timeoutMS)
	}
	// Record the waiter before the port joins the private set: a close, move or MoveMember
	// from then on finds it (wakeReceivers) and wakes it, where in the other order one in
	// between would take the port out of the set unseen and leave the receive waiting on a set
	// that no longer holds it.
	k.track(name, w, true)
	if kr := darwin.MachPortInsertMember(k.task, uint32(name), uint32(w.set)); kr != abi.KERN_SUCCESS {
		k.track(name, w, false)
		w.drain(k) // a wake-up may have come meanwhile
		k.putWaker(w)
		return k.rawReceive(name, buf, large, trailer, timeoutMS) // e.g. not a receive right: let mach_msg say so
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { k.wake(w.wake); close(fired) })
	ret := k.receiveOrWake(ctx, w, name, buf, large, trailer, timeoutMS)
	wasFired := !stop()
	if wasFired {
		<-fired
	}
	k.track(name, w, false)
	darwin.MachPortExtractMember(k.task, uint32(name), uint32(w.set))
	w.drain(k) // the set now holds only the wake port: empty it before reuse
	k.putWaker(w)
	return ret
}

// setPollInterval bounds how late a cancelled receive on a port set notices.
const setPollInterval = 10 // milliseconds

func (k *darwinKernel) receiveSetPolling(ctx context.Context, name Name, buf []byte, large bool, trailer TrailerElements, timeoutMS int) int32 {
	var deadline time.Time
	if timeoutMS >= 0 {
		deadline = time.Now().Add(time.Duration(timeoutMS) * time.Millisecond)
	}
	waited := false
	for {
		slice := setPollInterval
		if timeoutMS >= 0 {
			left := int(time.Until(deadline) / time.Millisecond)
			if left <= 0 {
				return k.rawReceive(name, buf, large, trailer, 0)
			}
			slice = min(slice, left)
		}
		ret := k.rawReceive(name, buf, large, trailer, slice)
		if ret == abi.MACH_RCV_INVALID_NAME && waited {
			// The set was destroyed while this receive waited on it: a thread blocked on it
			// would get MACH_RCV_PORT_CHANGED (ipc_mqueue_receive_results, THREAD_RESTART).
			return abi.MACH_RCV_PORT_CHANGED
		}
		if ret != abi.MACH_RCV_TIMED_OUT {
			return ret
		}
		waited = true
		if ctx.Err() != nil {
			return rcvCanceled
		}
	}
}

func (k *darwinKernel) receiveOrWake(ctx context.Context, w *waker, name Name, buf []byte, large bool, trailer TrailerElements, timeoutMS int) int32 {
	for {
		ret := k.rawReceive(w.set, buf, large, trailer, timeoutMS)
		if ret != abi.MACH_MSG_SUCCESS {
			return ret
		}
		if Name(le.Uint32(buf[offLocal:])) != w.wake {
			return ret
		}
		if ctx.Err() != nil {
			return rcvCanceled
		}
		// Woken because the port changed: gone, or taken out of the set. A thread blocked on
		// the port itself gets MACH_RCV_PORT_CHANGED when the port is destroyed or its receive
		// right moves (ipc_mqueue_changed wakes it with THREAD_RESTART, which
		// ipc_mqueue_receive_results turns into that code): this path gives the same.
		if pt, kr := k.portType(name); kr != abi.KERN_SUCCESS || !pt.Has(TypeReceive) {
			return abi.MACH_RCV_PORT_CHANGED
		}
		// Back in the private set (KERN_ALREADY_IN_SET when it is still there).
		darwin.MachPortInsertMember(k.task, uint32(name), uint32(w.set))
	}
}

// track records which wakers wait on a receive right.
func (k *darwinKernel) track(name Name, w *waker, on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.waiting == nil {
		k.waiting = map[Name]map[*waker]struct{}{}
	}
	if on {
		if k.waiting[name] == nil {
			k.waiting[name] = map[*waker]struct{}{}
		}
		k.waiting[name][w] = struct{}{}
		return
	}
	delete(k.waiting[name], w)
	if len(k.waiting[name]) == 0 {
		delete(k.waiting, name)
	}
}

// wakeReceivers wakes the cancellable receives waiting on name after the right was destroyed,
// moved away or moved between sets.
func (k *darwinKernel) wakeReceivers(name Name) {
	k.mu.Lock()
	var ws []*waker
	for w := range k.waiting[name] {
		ws = append(ws, w)
	}
	k.mu.Unlock()
	for _, w := range ws {
		k.wake(w.wake)
	}
}

// waker is a wake-up port (receive right with a send right, queue limit 1) and a port set.
type waker struct {
	set, wake Name
	idle      time.Time // when it was last put back
}

// A burst of concurrent cancellable receives makes a waker each. Once idle for wakerIdle, all
// but keptWakers of them are destroyed, so that the burst leaves no ports behind for good.
const (
	keptWakers = 1
	wakerIdle  = 100 * time.Millisecond
)

func (k *darwinKernel) getWaker() (*waker, int32) {
	k.mu.Lock()
	if n := len(k.wakers); n > 0 {
		w := k.wakers[n-1]
		k.wakers = k.wakers[:n-1]
		k.mu.Unlock()
		return w, abi.KERN_SUCCESS
	}
	k.mu.Unlock()
	set, kr := k.allocate(RightPortSet)
	if kr != abi.KERN_SUCCESS {
		return nil, kr
	}
	wake, kr := k.construct(portOptions{flags: abi.MPO_QLIMIT | abi.MPO_INSERT_SEND_RIGHT, queueLimit: 1})
	if kr != abi.KERN_SUCCESS {
		k.modRefs(set, RightPortSet, -1)
		return nil, kr
	}
	if kr := darwin.MachPortInsertMember(k.task, uint32(wake), uint32(set)); kr != abi.KERN_SUCCESS {
		k.modRefs(set, RightPortSet, -1)
		k.destruct(wake, -1, 0)
		return nil, kr
	}
	w := &waker{set: set, wake: wake}
	k.mu.Lock()
	if k.wakeOf == nil {
		k.wakeOf = map[Name]*waker{}
	}
	k.wakeOf[wake] = w
	k.mu.Unlock()
	return w, abi.KERN_SUCCESS
}

func (k *darwinKernel) putWaker(w *waker) {
	k.mu.Lock()
	w.idle = time.Now()
	k.wakers = append(k.wakers, w)
	if len(k.wakers) > keptWakers && k.trim == nil {
		k.trim = time.AfterFunc(wakerIdle, k.trimWakers)
	}
	k.mu.Unlock()
}

// trimWakers destroys the wakers idle for wakerIdle beyond the first keptWakers, and comes back
// later while there are more.
func (k *darwinKernel) trimWakers() {
	k.mu.Lock()
	var old []*waker
	for len(k.wakers) > keptWakers && time.Since(k.wakers[0].idle) >= wakerIdle {
		old = append(old, k.wakers[0])
		delete(k.wakeOf, k.wakers[0].wake)
		k.wakers = k.wakers[1:]
	}
	k.trim = nil
	if len(k.wakers) > keptWakers {
		k.trim = time.AfterFunc(wakerIdle, k.trimWakers)
	}
	k.mu.Unlock()
	for _, w := range old {
		k.modRefs(w.set, RightPortSet, -1)
		k.destruct(w.wake, -1, 0)
	}
}

// wake sends an empty message to a wake-up port without blocking. If its queue is full a
// wake-up is already pending; the pseudo-received send right that comes back is released.
func (k *darwinKernel) wake(port Name) {
	var b [headerSize]byte
	le.PutUint32(b[offBits:], uint32(MakeBits(CopySend, 0, 0, false)))
	le.PutUint32(b[offSize:], headerSize)
	le.PutUint32(b[offRemote:], uint32(port))
	if ret := k.send(b[:], nil, 0); ret != abi.MACH_MSG_SUCCESS {
		var back Message
		if back.decode(b[:]) == nil && back.Remote.Disposition == PortSend && back.Remote.Name.Valid() {
			k.deallocate(back.Remote.Name)
		}
	}
}

// drain empties a waker's set (which then holds only its wake-up port) with non-blocking
// receives.
func (w *waker) drain(k *darwinKernel) {
	var b [headerSize + maxTrailerSize]byte
	for k.rawReceive(w.set, b[:], false, TrailerDefault, 0) == abi.MACH_MSG_SUCCESS {
	}
}

// peek calls mach_port_peek. Its trailer count is in bytes (the MIG array of char); the
// kernel refuses a trailer beyond the audit trailer with KERN_INVALID_VALUE and a guard
// exception, so Peek refuses one before calling.
func (k *darwinKernel) peek(name Name, seqno uint32, trailer TrailerElements, tbuf []byte) (peekResult, int32) {
	if darwin.MachPortPeek == nil {
		return peekResult{}, abi.KERN_NOT_SUPPORTED // the symbol is missing (it is optional)
	}
	var size uint32
	var id int32
	count := uint32(len(tbuf))
	kr := darwin.MachPortPeek(k.task, uint32(name), uint32(trailer.options()), &seqno, &size, &id,
		(*int8)(unsafe.Pointer(unsafe.SliceData(tbuf))), &count)
	if kr != abi.KERN_SUCCESS {
		return peekResult{}, kr
	}
	return peekResult{seqno: seqno, size: size, id: id, trailerLen: int(min(count, uint32(len(tbuf))))}, kr
}

// destroy releases a received message with mach_msg_destroy, which unmaps an out-of-line region
// only when its deallocate flag is set (libsyscall's mach_msg_destroy_memory), and the kernel
// sets that flag for virtual copies only (ipc_kmsg_copyout_ool_descriptor): a region it copied
// physically would stay mapped. Every region of a received message is the receiver's, so the
// flag is set on all of them first.
func (k *darwinKernel) destroy(buf []byte) {
	if len(buf) >= baseSize && Bits(le.Uint32(buf[offBits:])).Complex() {
		size := min(int(le.Uint32(buf[offSize:])), len(buf))
		off, count := baseSize, le.Uint32(buf[offCount:])
		for i := uint32(0); i < count && off+portDescriptorSize <= size; i++ {
			switch DescriptorType(buf[off+descriptorTypeByte]) {
			case PortDescriptorType:
				off += portDescriptorSize
				continue
			case OOLDescriptorType, OOLVolatileDescriptorType, OOLPortsDescriptorType:
				if off+oolDescriptorSize <= size {
					buf[off+8] = 1 // deallocate
				}
			}
			off += oolDescriptorSize
		}
	}
	darwin.MachMsgDestroy(ptr(buf))
}

func (k *darwinKernel) allocate(right PortRight) (Name, int32) {
	var n uint32
	kr := darwin.MachPortAllocate(k.task, uint32(right), &n)
	return Name(n), kr
}

func (k *darwinKernel) construct(opts portOptions) (Name, int32) {
	var b [portOptionsSize]byte
	opts.encode(&b)
	var n uint32
	kr := darwin.MachPortConstruct(k.task, unsafe.Pointer(&b), opts.context, &n)
	return Name(n), kr
}

func (k *darwinKernel) destruct(name Name, srdelta int32, guard uint64) int32 {
	kr := darwin.MachPortDestruct(k.task, uint32(name), srdelta, guard)
	if kr == abi.KERN_SUCCESS {
		k.forgetSets(name)
	}
	k.wakeReceivers(name)
	return kr
}

func (k *darwinKernel) deallocate(name Name) int32 {
	return darwin.MachPortDeallocate(k.task, uint32(name))
}

func (k *darwinKernel) modRefs(name Name, right PortRight, delta int32) int32 {
	kr := darwin.MachPortModRefs(k.task, uint32(name), uint32(right), delta)
	switch {
	case right == RightReceive && delta < 0:
		if kr == abi.KERN_SUCCESS {
			k.forgetSets(name)
		}
		k.wakeReceivers(name)
	case right == RightPortSet && delta < 0 && kr == abi.KERN_SUCCESS:
		k.forgetSet(name) // its members left it
	}
	return kr
}

func (k *darwinKernel) getRefs(name Name, right PortRight) (uint32, int32) {
	var n uint32
	kr := darwin.MachPortGetRefs(k.task, uint32(name), uint32(right), &n)
	return n, kr
}

func (k *darwinKernel) portType(name Name) (PortType, int32) {
	var t uint32
	kr := darwin.MachPortType(k.task, uint32(name), &t)
	return PortType(t), kr
}

func (k *darwinKernel) insertRight(name, poly Name, disp Disposition) int32 {
	return darwin.MachPortInsertRight(k.task, uint32(name), uint32(poly), uint32(disp))
}

func (k *darwinKernel) extractRight(name Name, disp Disposition) (Name, Disposition, int32) {
	var n, t uint32
	kr := darwin.MachPortExtractRight(k.task, uint32(name), uint32(disp), &n, &t)
	return Name(n), Disposition(t), kr
}

func (k *darwinKernel) requestNotification(name Name, id int32, sync uint32, notify Name, disp Disposition) (Name, int32) {
	var prev uint32
	kr := darwin.MachPortRequestNotification(k.task, uint32(name), id, sync, uint32(notify), uint32(disp), &prev)
	return Name(prev), kr
}

func (k *darwinKernel) setAttributes(name Name, flavor int32, info []int32) int32 {
	return darwin.MachPortSetAttributes(k.task, uint32(name), flavor, unsafe.SliceData(info), uint32(len(info)))
}

// getAttributes reports mps_pset for the caller's sets only: a port that a cancellable receive
// has put in its private set is not in a port set as far as the caller can tell.
func (k *darwinKernel) getAttributes(name Name, flavor int32, info []int32) (int, int32) {
	count := uint32(len(info))
	kr := darwin.MachPortGetAttributes(k.task, uint32(name), flavor, unsafe.SliceData(info), &count)
	if kr == abi.KERN_SUCCESS && flavor == abi.MACH_PORT_RECEIVE_STATUS && count > 0 {
		if inSet, waiting := k.inCallersSet(name); waiting && !inSet {
			info[0] = 0
		}
	}
	return int(count), kr
}

func (k *darwinKernel) insertMember(name, set Name) int32 {
	kr := darwin.MachPortInsertMember(k.task, uint32(name), uint32(set))
	if kr == abi.KERN_SUCCESS {
		k.noteSet(name, set, true)
	}
	return kr
}

func (k *darwinKernel) extractMember(name, set Name) int32 {
	kr := darwin.MachPortExtractMember(k.task, uint32(name), uint32(set))
	if kr == abi.KERN_SUCCESS {
		k.noteSet(name, set, false)
	}
	return kr
}

// moveMember with a null set takes the port out of every set, the private one of a waiting
// receive too: when the port is in none of the caller's, xnu would answer KERN_NOT_IN_SET
// (mach_port_move_member), and so does this, without touching the private set.
func (k *darwinKernel) moveMember(name, set Name) int32 {
	if !set.Valid() {
		if inSet, waiting := k.inCallersSet(name); waiting && !inSet {
			if pt, kr := k.portType(name); kr == abi.KERN_SUCCESS && pt.Has(TypeReceive) {
				return abi.KERN_NOT_IN_SET
			}
		}
	}
	kr := darwin.MachPortMoveMember(k.task, uint32(name), uint32(set))
	if kr == abi.KERN_SUCCESS {
		k.forgetSets(name)
		if set.Valid() {
			k.noteSet(name, set, true)
		}
	}
	k.wakeReceivers(name) // it left the private set of a waiting receive: let it rejoin
	return kr
}

// forgetSet forgets a destroyed set of the caller's.
func (k *darwinKernel) forgetSet(set Name) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for name, sets := range k.sets {
		delete(sets, set)
		if len(sets) == 0 {
			delete(k.sets, name)
		}
	}
}

// names copies mach_port_names' two arrays, which MIG returns as out-of-line memory in this
// task, and unmaps them.
func (k *darwinKernel) names() ([]Name, []PortType, int32) {
	var namesPtr, typesPtr *uint32
	var nNames, nTypes uint32
	kr := darwin.MachPortNames(k.task, &namesPtr, &nNames, &typesPtr, &nTypes)
	if kr != abi.KERN_SUCCESS {
		return nil, nil, kr
	}
	var rawNames, rawTypes []uint32
	if nNames > 0 {
		rawNames = unsafe.Slice(namesPtr, nNames)
	}
	if nTypes > 0 {
		rawTypes = unsafe.Slice(typesPtr, nTypes)
	}
	// The wakers' own ports and sets are this package's plumbing, not the caller's rights.
	k.mu.Lock()
	private := map[Name]bool{}
	for _, w := range k.wakeOf {
		private[w.set], private[w.wake] = true, true
	}
	k.mu.Unlock()
	var names []Name
	var types []PortType
	for i, v := range rawNames {
		if private[Name(v)] || i >= len(rawTypes) {
			continue
		}
		names = append(names, Name(v))
		types = append(types, PortType(rawTypes[i]))
	}
	if nNames > 0 {
		k.vmDeallocate(uintptr(unsafe.Pointer(namesPtr)), int(nNames)*4)
	}
	if nTypes > 0 {
		k.vmDeallocate(uintptr(unsafe.Pointer(typesPtr)), int(nTypes)*4)
	}
	return names, types, kr
}

func (k *darwinKernel) vmAllocate(size int) (uintptr, int32) {
	var addr uint64
	kr := darwin.VMAllocate(k.task, &addr, uint64(size), abi.VM_FLAGS_ANYWHERE)
	return uintptr(addr), kr
}

func (k *darwinKernel) vmDeallocate(addr uintptr, size int) int32 {
	return darwin.VMDeallocate(k.task, uint64(addr), uint64(size))
}
