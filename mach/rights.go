package mach

import (
	"sync/atomic"
	"unsafe"
)

// Right is a typed port right: *ReceiveRight, *SendRight, *SendOnceRight, *DeadName or *PortSet.
// Close releases exactly the one right (user reference) the value stands for.
type Right interface {
	Name() Name
	Kind() PortRight
	Close() error
}

// rightState is what every typed right shares: its name, whether it is still held, and, for a
// receive right made with a guard, that guard.
type rightState struct {
	name    atomic.Uint32
	gone    atomic.Bool // closed, or moved away by a successful send
	guard   uint64
	guarded bool
}

func (s *rightState) current() Name { return Name(s.name.Load()) }

// held returns the name, or ErrClosed once the right is closed or moved.
func (s *rightState) held(op string) (Name, error) {
	if s.gone.Load() {
		return NameNull, &OpError{Op: op, Name: s.current(), Err: ErrClosed}
	}
	return s.current(), nil
}

// use returns the name and the kernel for an operation on a right that must still be held.
func (s *rightState) use(op string) (Name, kernel, error) {
	n, err := s.held(op)
	if err != nil {
		return NameNull, nil, err
	}
	k, err := getKernel(op)
	return n, k, err
}

// release runs free once, the first time the right is given up; later calls return nil.
func (s *rightState) release(op string, free func(k kernel, n Name) int32) error {
	if !s.gone.CompareAndSwap(false, true) {
		return nil
	}
	k, err := getKernel(op)
	if err != nil {
		return err
	}
	n := s.current()
	return kernErr(op, n, free(k, n))
}

// ReceiveRight is the receive right of a port: the one place its messages can be read. Close
// destroys the port; senders then see a dead name.
type ReceiveRight struct{ s rightState }

// SendRight is one user reference of a send right.
type SendRight struct{ s rightState }

// SendOnceRight is a send-once right: it can carry exactly one message. Closing it unused makes
// the kernel send MACH_NOTIFY_SEND_ONCE to its port.
type SendOnceRight struct{ s rightState }

// DeadName is one user reference of a dead name: a send or send-once right whose port is gone.
type DeadName struct{ s rightState }

// PortSet is a port set: receiving on it returns a message from any member port.
type PortSet struct{ s rightState }

// AdoptReceive takes ownership of a receive right known only by name, e.g. from a C API.
func AdoptReceive(n Name) *ReceiveRight { r := new(ReceiveRight); r.s.name.Store(uint32(n)); return r }

// AdoptSend takes ownership of one user reference of a send right known only by name.
func AdoptSend(n Name) *SendRight { r := new(SendRight); r.s.name.Store(uint32(n)); return r }

// AdoptSendOnce takes ownership of a send-once right known only by name.
func AdoptSendOnce(n Name) *SendOnceRight {
	r := new(SendOnceRight)
	r.s.name.Store(uint32(n))
	return r
}

// AdoptDeadName takes ownership of one user reference of a dead name.
func AdoptDeadName(n Name) *DeadName { r := new(DeadName); r.s.name.Store(uint32(n)); return r }

// AdoptPortSet takes ownership of a port set known only by name.
func AdoptPortSet(n Name) *PortSet { r := new(PortSet); r.s.name.Store(uint32(n)); return r }

// Name returns the right's port name.
func (r *ReceiveRight) Name() Name { return r.s.current() }

// Kind returns RightReceive.
func (r *ReceiveRight) Kind() PortRight { return RightReceive }

// Close destroys the receive right (mach_port_destruct for a guarded right, otherwise
// mach_port_mod_refs by -1). Messages still queued are destroyed with it. Safe to call twice.
func (r *ReceiveRight) Close() error {
	if r.s.guarded {
		return r.s.release("mach_port_destruct", func(k kernel, n Name) int32 { return k.destruct(n, 0, r.s.guard) })
	}
	return r.s.release("mach_port_mod_refs", func(k kernel, n Name) int32 { return k.modRefs(n, RightReceive, -1) })
}

func (r *ReceiveRight) receiveName() (Name, error) { return r.s.held("mach_msg receive") }

// MakeSend creates a send right to the port (mach_port_insert_right with MAKE_SEND). The send
// right has the receive right's name; each call adds one user reference.
func (r *ReceiveRight) MakeSend() (*SendRight, error) {
	n, k, err := r.s.use("mach_port_insert_right")
	if err != nil {
		return nil, err
	}
	if err := kernErr("mach_port_insert_right", n, k.insertRight(n, n, MakeSend)); err != nil {
		return nil, err
	}
	return AdoptSend(n), nil
}

// MakeSendOnce creates a send-once right to the port (mach_port_extract_right with
// MAKE_SEND_ONCE). It gets a name of its own.
func (r *ReceiveRight) MakeSendOnce() (*SendOnceRight, error) {
	n, k, err := r.s.use("mach_port_extract_right")
	if err != nil {
		return nil, err
	}
	so, _, kr := k.extractRight(n, MakeSendOnce)
	if err := kernErr("mach_port_extract_right", n, kr); err != nil {
		return nil, err
	}
	return AdoptSendOnce(so), nil
}

// Name returns the right's port name.
func (r *SendRight) Name() Name { return r.s.current() }

// Kind returns RightSend.
func (r *SendRight) Kind() PortRight { return RightSend }

// Close releases this user reference (mach_port_deallocate). Safe to call twice. If the port
// died meanwhile, the reference is a dead name's and is released all the same.
func (r *SendRight) Close() error {
	return r.s.release("mach_port_deallocate", func(k kernel, n Name) int32 { return k.deallocate(n) })
}

// Copy adds a user reference to the send right (mach_port_mod_refs +1) and returns it as a
// separate value; both must be closed.
func (r *SendRight) Copy() (*SendRight, error) {
	n, k, err := r.s.use("mach_port_mod_refs")
	if err != nil {
		return nil, err
	}
	if err := kernErr("mach_port_mod_refs", n, k.modRefs(n, RightSend, 1)); err != nil {
		return nil, err
	}
	return AdoptSend(n), nil
}

// Name returns the right's port name.
func (r *SendOnceRight) Name() Name { return r.s.current() }

// Kind returns RightSendOnce.
func (r *SendOnceRight) Kind() PortRight { return RightSendOnce }

// Close releases the send-once right unused (mach_port_deallocate); its port receives
// MACH_NOTIFY_SEND_ONCE. Safe to call twice.
func (r *SendOnceRight) Close() error {
	return r.s.release("mach_port_deallocate", func(k kernel, n Name) int32 { return k.deallocate(n) })
}

// Name returns the dead name.
func (r *DeadName) Name() Name { return r.s.current() }

// Kind returns RightDeadName.
func (r *DeadName) Kind() PortRight { return RightDeadName }

// Close releases this user reference of the dead name. Safe to call twice.
func (r *DeadName) Close() error {
	return r.s.release("mach_port_mod_refs", func(k kernel, n Name) int32 { return k.modRefs(n, RightDeadName, -1) })
}

// Name returns the port set's name.
func (r *PortSet) Name() Name { return r.s.current() }

// Kind returns RightPortSet.
func (r *PortSet) Kind() PortRight { return RightPortSet }

// Close destroys the port set; its members leave it. Safe to call twice.
func (r *PortSet) Close() error {
	return r.s.release("mach_port_mod_refs", func(k kernel, n Name) int32 { return k.modRefs(n, RightPortSet, -1) })
}

func (r *PortSet) receiveName() (Name, error) { return r.s.held("mach_msg receive") }

// Add makes the receive right a member of the set (mach_port_insert_member). A port may belong
// to several sets.
func (r *PortSet) Add(member *ReceiveRight) error { return r.member("mach_port_insert_member", member) }

// Remove takes the receive right out of the set (mach_port_extract_member).
func (r *PortSet) Remove(member *ReceiveRight) error {
	return r.member("mach_port_extract_member", member)
}

func (r *PortSet) member(op string, member *ReceiveRight) error {
	set, err := r.s.held(op)
	if err != nil {
		return err
	}
	n, k, err := member.s.use(op)
	if err != nil {
		return err
	}
	if op == "mach_port_insert_member" {
		return kernErr(op, n, k.insertMember(n, set))
	}
	return kernErr(op, n, k.extractMember(n, set))
}

// NewPortSet allocates an empty port set.
func NewPortSet() (*PortSet, error) {
	k, err := getKernel("mach_port_allocate")
	if err != nil {
		return nil, err
	}
	n, kr := k.allocate(RightPortSet)
	if err := kernErr("mach_port_allocate", NameNull, kr); err != nil {
		return nil, err
	}
	return AdoptPortSet(n), nil
}

// Receiver is something Receive can wait on: a *ReceiveRight or a *PortSet.
type Receiver interface {
	receiveName() (Name, error)
}

// Ports for messages. A Port built from a typed right lets Send refuse a right that was already
// closed, and mark the right as gone when the message moves it. A right must not be closed while
// a message naming it is being sent.

// CopySendOf names a send right the sender keeps (COPY_SEND).
func CopySendOf(r *SendRight) Port { return Port{Name: r.Name(), Disposition: CopySend, owner: &r.s} }

// MoveSendOf names a send right the message takes away (MOVE_SEND); after a successful send the
// SendRight is gone and Close does nothing.
func MoveSendOf(r *SendRight) Port { return Port{Name: r.Name(), Disposition: MoveSend, owner: &r.s} }

// MakeSendOf makes a new send right from a receive right (MAKE_SEND) for the receiver.
func MakeSendOf(r *ReceiveRight) Port {
	return Port{Name: r.Name(), Disposition: MakeSend, owner: &r.s}
}

// MakeSendOnceOf makes a send-once right from a receive right (MAKE_SEND_ONCE), e.g. for replies.
func MakeSendOnceOf(r *ReceiveRight) Port {
	return Port{Name: r.Name(), Disposition: MakeSendOnce, owner: &r.s}
}

// MoveSendOnceOf sends a send-once right away (MOVE_SEND_ONCE), e.g. to reply through it.
func MoveSendOnceOf(r *SendOnceRight) Port {
	return Port{Name: r.Name(), Disposition: MoveSendOnce, owner: &r.s}
}

// MoveReceiveOf sends the receive right itself (MOVE_RECEIVE).
func MoveReceiveOf(r *ReceiveRight) Port {
	return Port{Name: r.Name(), Disposition: MoveReceive, owner: &r.s}
}

// rightFor adopts the right a received Port holds, or returns nil for a null or dead name.
func rightFor(p Port) Right {
	if !p.Name.Valid() {
		return nil
	}
	switch p.Disposition {
	case PortReceive:
		return AdoptReceive(p.Name)
	case PortSend:
		return AdoptSend(p.Name)
	case PortSendOnce:
		return AdoptSendOnce(p.Name)
	}
	return nil
}

// Region is memory owned through the Mach VM: out-of-line data that arrived in a message, or
// memory from AllocateRegion to send with Deallocate. Close returns it to the system.
//
// On Linux (the emulation) a region from AllocateRegion is a memfd mapped shared, its pages
// populated when it is made, so that filling it does not fault page by page; sent with
// Deallocate, its memfd moves to the receiver without a copy. Regions of 32 KiB and more reuse
// the memfds of regions deallocated earlier (zeroed, once no receiver holds them), so their pages
// are ready to fill. A received region of up to 1 MiB whose sender could still change it (a
// region moved whole, a copy from the sender's pool of memfds, any memfd not sealed against
// writes and shrinking) is a copy of the receiver's own; larger ones, and copies sealed against
// every change, are mapped copy-on-write.
type Region struct {
	addr atomic.Uintptr
	size int
	gone atomic.Bool
}

func newRegion(addr uintptr, size int) *Region {
	r := &Region{size: size}
	r.addr.Store(addr)
	return r
}

// AllocateRegion allocates size bytes of zeroed, page-aligned memory (vm_allocate). On Linux the
// pages are populated at once (see Region).
func AllocateRegion(size int) (*Region, error) {
	k, err := getKernel("vm_allocate")
	if err != nil {
		return nil, err
	}
	if size <= 0 {
		return nil, &OpError{Op: "vm_allocate", Err: KernInvalidArgument}
	}
	addr, kr := k.vmAllocate(size)
	if err := kernErr("vm_allocate", NameNull, kr); err != nil {
		return nil, err
	}
	return newRegion(addr, size), nil
}

// Len returns the region's size in bytes.
func (r *Region) Len() int { return r.size }

// Bytes returns the region's memory. The slice is valid until Close, or until a send with
// Deallocate hands the region away.
func (r *Region) Bytes() []byte {
	if r.gone.Load() || r.size == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), r.addr.Load())), r.size)
}

// Close unmaps the region (vm_deallocate). Safe to call twice.
func (r *Region) Close() error {
	if !r.gone.CompareAndSwap(false, true) {
		return nil
	}
	k, err := getKernel("vm_deallocate")
	if err != nil {
		return err
	}
	if r.size == 0 {
		return nil
	}
	return kernErr("vm_deallocate", NameNull, k.vmDeallocate(r.addr.Load(), r.size))
}
