//go:build darwin && !ios

package mach

import (
	"context"
	"sync"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
)

// The Darwin kernel through libSystem. Status: builds for darwin/arm64 and darwin/amd64 and is
// checked against the macOS 13.3 SDK; it has not run on macOS yet.

func init() {
	if err := darwin.Load(); err != nil {
		sysErr = err
		return
	}
	sys = &darwinKernel{task: darwin.TaskSelf()}
}

type darwinKernel struct {
	task uint32

	mu     sync.Mutex
	wakers []*waker        // idle wakers, reused
	wakeOf map[Name]*waker // every waker by its wake port's name
}

func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

func (k *darwinKernel) send(buf []byte, timeoutMS int) int32 {
	opt, timeout := int32(abi.MACH_SEND_MSG), uint32(abi.MACH_MSG_TIMEOUT_NONE)
	if timeoutMS >= 0 {
		opt |= abi.MACH_SEND_TIMEOUT
		timeout = uint32(timeoutMS)
	}
	size := le.Uint32(buf[offSize:])
	return darwin.MachMsg(ptr(buf), opt, size, 0, 0, timeout, 0)
}

func (k *darwinKernel) rawReceive(name Name, buf []byte, large bool, timeoutMS int) int32 {
	opt, timeout := int32(abi.MACH_RCV_MSG|rcvAuditOptions), uint32(abi.MACH_MSG_TIMEOUT_NONE)
	if large {
		opt |= abi.MACH_RCV_LARGE
	}
	if timeoutMS >= 0 {
		opt |= abi.MACH_RCV_TIMEOUT
		timeout = uint32(timeoutMS)
	}
	return darwin.MachMsg(ptr(buf), opt, 0, uint32(len(buf)), uint32(name), timeout, 0)
}

// receive blocks its OS thread in mach_msg. A cancellable ctx needs a way to wake it: the
// receive waits on a port set holding both the port and a private wake-up port, and
// cancellation sends an empty message to the wake-up port (the Ladybird/Chromium pattern).
func (k *darwinKernel) receive(ctx context.Context, name Name, buf []byte, large bool, timeoutMS int) int32 {
	if ctx.Done() == nil {
		return k.rawReceive(name, buf, large, timeoutMS)
	}
	w, kr := k.getWaker()
	if kr != abi.KERN_SUCCESS {
		return k.rawReceive(name, buf, large, timeoutMS) // cannot wake; a deadline still applies
	}
	// A receive right joins the waker's set; a port set instead takes the wake port in.
	pt, _ := k.portType(name)
	set, member := w.set, name
	if pt.Has(TypePortSet) {
		set, member = name, w.wake
	}
	if kr := k.insertMember(member, set); kr != abi.KERN_SUCCESS {
		k.putWaker(w)
		return k.rawReceive(name, buf, large, timeoutMS)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { k.wake(w.wake); close(fired) })
	ret := k.receiveOrWake(ctx, w, set, buf, large, timeoutMS)
	wasFired := !stop()
	if wasFired {
		<-fired
	}
	k.extractMember(member, set)
	if wasFired {
		w.drain(k) // the set now holds only the wake port: empty it before reuse
	}
	k.putWaker(w)
	return ret
}

func (k *darwinKernel) receiveOrWake(ctx context.Context, w *waker, set Name, buf []byte, large bool, timeoutMS int) int32 {
	for {
		ret := k.rawReceive(set, buf, large, timeoutMS)
		if ret != abi.MACH_MSG_SUCCESS {
			return ret
		}
		local := Name(le.Uint32(buf[offLocal:]))
		if local == w.wake {
			if ctx.Err() != nil {
				return rcvCanceled
			}
			continue // a stale wake-up from an earlier cancellation
		}
		if other := k.wakerFor(local); other != nil {
			k.wake(other.wake) // another receiver's wake-up: pass it on
			continue
		}
		return ret
	}
}

// waker is a wake-up port (receive right with a send right, queue limit 1) and a port set.
type waker struct{ set, wake Name }

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
	if kr := k.insertMember(wake, set); kr != abi.KERN_SUCCESS {
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
	k.wakers = append(k.wakers, w)
	k.mu.Unlock()
}

func (k *darwinKernel) wakerFor(n Name) *waker {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.wakeOf[n]
}

// wake sends an empty message to a wake-up port without blocking. If its queue is full a
// wake-up is already pending; the pseudo-received send right that comes back is released.
func (k *darwinKernel) wake(port Name) {
	var b [headerSize]byte
	le.PutUint32(b[offBits:], uint32(MakeBits(CopySend, 0, 0, false)))
	le.PutUint32(b[offSize:], headerSize)
	le.PutUint32(b[offRemote:], uint32(port))
	if ret := k.send(b[:], 0); ret != abi.MACH_MSG_SUCCESS {
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
	for k.rawReceive(w.set, b[:], false, 0) == abi.MACH_MSG_SUCCESS {
	}
}

func (k *darwinKernel) destroy(buf []byte) { darwin.MachMsgDestroy(ptr(buf)) }

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
	return darwin.MachPortDestruct(k.task, uint32(name), srdelta, guard)
}

func (k *darwinKernel) deallocate(name Name) int32 {
	return darwin.MachPortDeallocate(k.task, uint32(name))
}

func (k *darwinKernel) modRefs(name Name, right PortRight, delta int32) int32 {
	return darwin.MachPortModRefs(k.task, uint32(name), uint32(right), delta)
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

func (k *darwinKernel) getAttributes(name Name, flavor int32, info []int32) (int, int32) {
	count := uint32(len(info))
	kr := darwin.MachPortGetAttributes(k.task, uint32(name), flavor, unsafe.SliceData(info), &count)
	return int(count), kr
}

func (k *darwinKernel) insertMember(name, set Name) int32 {
	return darwin.MachPortInsertMember(k.task, uint32(name), uint32(set))
}

func (k *darwinKernel) extractMember(name, set Name) int32 {
	return darwin.MachPortExtractMember(k.task, uint32(name), uint32(set))
}

func (k *darwinKernel) moveMember(name, set Name) int32 {
	return darwin.MachPortMoveMember(k.task, uint32(name), uint32(set))
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
	names := make([]Name, nNames)
	types := make([]PortType, min(nNames, nTypes))
	if nNames > 0 {
		for i, v := range unsafe.Slice(namesPtr, nNames) {
			names[i] = Name(v)
		}
		k.vmDeallocate(uintptr(unsafe.Pointer(namesPtr)), int(nNames)*4)
	}
	if nTypes > 0 {
		for i, v := range unsafe.Slice(typesPtr, nTypes)[:len(types)] {
			types[i] = PortType(v)
		}
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
