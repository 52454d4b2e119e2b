package mach

import (
	"encoding/binary"

	"github.com/machport/machport/internal/abi"
)

// PortOptions configure NewPort (mach_port_construct).
type PortOptions struct {
	// QueueLimit is the most messages the port queues before senders block (MPO_QLIMIT);
	// 0 keeps the kernel's default (MACH_PORT_QLIMIT_DEFAULT, 5). At most QueueLimitMax.
	QueueLimit int
	// Guard, when non-zero, guards the receive right with this value (MPO_CONTEXT_AS_GUARD):
	// only Close (mach_port_destruct with the guard) may destroy it.
	Guard uint64
	// Strict makes the guard strict (MPO_STRICT).
	Strict bool
	// Immovable forbids moving the guarded receive right out of the task (MPO_IMMOVABLE_RECEIVE;
	// needs Guard).
	Immovable bool
	// Context is stored as the port's context (mach_port_get_context) when there is no Guard.
	Context uint64
}

// Queue limits.
const (
	QueueLimitDefault = 5     // MACH_PORT_QLIMIT_DEFAULT
	QueueLimitMax     = 0x400 // MACH_PORT_QLIMIT_MAX
)

// NewPort allocates a port and returns its receive right.
func NewPort(opts PortOptions) (*ReceiveRight, error) {
	r, _, err := newPort(opts, false)
	return r, err
}

// NewPortWithSendRight allocates a port together with a send right under the same name
// (MPO_INSERT_SEND_RIGHT), in one kernel call.
func NewPortWithSendRight(opts PortOptions) (*ReceiveRight, *SendRight, error) {
	return newPort(opts, true)
}

func newPort(opts PortOptions, withSend bool) (*ReceiveRight, *SendRight, error) {
	const op = "mach_port_construct"
	k, err := getKernel(op)
	if err != nil {
		return nil, nil, err
	}
	if opts.QueueLimit < 0 || opts.QueueLimit > QueueLimitMax || (opts.Immovable && opts.Guard == 0) {
		return nil, nil, &OpError{Op: op, Err: KernInvalidValue}
	}
	po := portOptions{context: opts.Context}
	if withSend {
		po.flags |= abi.MPO_INSERT_SEND_RIGHT
	}
	if opts.QueueLimit > 0 {
		po.flags |= abi.MPO_QLIMIT
		po.queueLimit = uint32(opts.QueueLimit)
	}
	if opts.Guard != 0 {
		po.flags |= abi.MPO_CONTEXT_AS_GUARD
		po.context = opts.Guard
		if opts.Strict {
			po.flags |= abi.MPO_STRICT
		}
		if opts.Immovable {
			po.flags |= abi.MPO_IMMOVABLE_RECEIVE
		}
	}
	n, kr := k.construct(po)
	if err := kernErr(op, NameNull, kr); err != nil {
		return nil, nil, err
	}
	r := AdoptReceive(n)
	r.s.guard, r.s.guarded = opts.Guard, opts.Guard != 0
	if withSend {
		return r, AdoptSend(n), nil
	}
	return r, nil, nil
}

// portOptionsSize is sizeof(mach_port_options_t).
const portOptionsSize = 24

// encode writes mach_port_options_t: flags, mpl.mpl_qlimit, then 16 reserved bytes.
func (o portOptions) encode(b *[portOptionsSize]byte) {
	*b = [portOptionsSize]byte{}
	binary.LittleEndian.PutUint32(b[0:], o.flags)
	binary.LittleEndian.PutUint32(b[4:], o.queueLimit)
}

// SetQueueLimit changes the port's queue limit (MACH_PORT_LIMITS_INFO).
func (r *ReceiveRight) SetQueueLimit(limit int) error {
	const op = "mach_port_set_attributes"
	n, k, err := r.s.use(op)
	if err != nil {
		return err
	}
	if limit < 0 || limit > QueueLimitMax {
		return &OpError{Op: op, Name: n, Err: KernInvalidValue}
	}
	info := [abi.MACH_PORT_LIMITS_INFO_COUNT]int32{int32(limit)}
	return kernErr(op, n, k.setAttributes(n, abi.MACH_PORT_LIMITS_INFO, info[:]))
}

// PortStatus is mach_port_status_t: the state of a receive right.
type PortStatus struct {
	InPortSet              bool   // mps_pset: the port is a member of a port set (xnu reports 0 or 1)
	Seqno                  uint32 // mps_seqno
	MakeSendCount          uint32 // mps_mscount: send rights made so far
	QueueLimit             uint32 // mps_qlimit
	MessageCount           uint32 // mps_msgcount: messages queued
	SendOnceCount          uint32 // mps_sorights
	SendRights             bool   // mps_srights: send rights exist
	PortDestroyedRequested bool   // mps_pdrequest
	NoSendersRequested     bool   // mps_nsrequest
	Flags                  uint32 // mps_flags
}

// portStatusWords is MACH_PORT_RECEIVE_STATUS_COUNT: mach_port_status_t in natural_t units.
const portStatusWords = abi.MACH_PORT_RECEIVE_STATUS_COUNT

func decodePortStatus(w [portStatusWords]int32) PortStatus {
	return PortStatus{
		InPortSet: w[0] != 0, Seqno: uint32(w[1]), MakeSendCount: uint32(w[2]), QueueLimit: uint32(w[3]),
		MessageCount: uint32(w[4]), SendOnceCount: uint32(w[5]), SendRights: w[6] != 0,
		PortDestroyedRequested: w[7] != 0, NoSendersRequested: w[8] != 0, Flags: uint32(w[9]),
	}
}

// Status returns the port's status (MACH_PORT_RECEIVE_STATUS).
func (r *ReceiveRight) Status() (PortStatus, error) {
	const op = "mach_port_get_attributes"
	n, k, err := r.s.use(op)
	if err != nil {
		return PortStatus{}, err
	}
	var w [portStatusWords]int32
	if _, kr := k.getAttributes(n, abi.MACH_PORT_RECEIVE_STATUS, w[:]); kr != abi.KERN_SUCCESS {
		return PortStatus{}, kernErr(op, n, kr)
	}
	return decodePortStatus(w), nil
}

// MoveMember makes the receive right a member of set only, leaving every other set it was in
// (mach_port_move_member); with a nil set it leaves all sets.
func MoveMember(member *ReceiveRight, set *PortSet) error {
	const op = "mach_port_move_member"
	n, err := member.s.held(op)
	if err != nil {
		return err
	}
	target := NameNull
	if set != nil {
		if target, err = set.s.held(op); err != nil {
			return err
		}
	}
	k, err := getKernel(op)
	if err != nil {
		return err
	}
	return kernErr(op, n, k.moveMember(n, target))
}

// Low-level operations on names, for rights not held as typed values.

// ModRefs adds delta user references of the given right to name (mach_port_mod_refs).
func ModRefs(name Name, right PortRight, delta int32) error {
	const op = "mach_port_mod_refs"
	k, err := getKernel(op)
	if err != nil {
		return err
	}
	return kernErr(op, name, k.modRefs(name, right, delta))
}

// Refs returns the user-reference count of a right (mach_port_get_refs).
func Refs(name Name, right PortRight) (uint32, error) {
	const op = "mach_port_get_refs"
	k, err := getKernel(op)
	if err != nil {
		return 0, err
	}
	n, kr := k.getRefs(name, right)
	return n, kernErr(op, name, kr)
}

// TypeOf returns the rights a name denotes (mach_port_type).
func TypeOf(name Name) (PortType, error) {
	const op = "mach_port_type"
	k, err := getKernel(op)
	if err != nil {
		return 0, err
	}
	t, kr := k.portType(name)
	return t, kernErr(op, name, kr)
}

// InsertRight gives this task the right made from poly with disposition disp under name
// (mach_port_insert_right). Within one task it is used to make a send right under the receive
// right's name: InsertRight(n, n, MakeSend).
func InsertRight(name, poly Name, disp Disposition) error {
	const op = "mach_port_insert_right"
	k, err := getKernel(op)
	if err != nil {
		return err
	}
	return kernErr(op, name, k.insertRight(name, poly, disp))
}

// ExtractRight takes a right out of name with disposition disp (mach_port_extract_right) and
// returns the new right's name and type.
func ExtractRight(name Name, disp Disposition) (Port, error) {
	const op = "mach_port_extract_right"
	k, err := getKernel(op)
	if err != nil {
		return Port{}, err
	}
	n, t, kr := k.extractRight(name, disp)
	return Port{Name: n, Disposition: t}, kernErr(op, name, kr)
}

// Deallocate releases one user reference of a send, send-once or dead-name right, or destroys a
// port set (mach_port_deallocate). Releasing a name's last right while a dead-name request is
// armed on it sends MACH_NOTIFY_PORT_DELETED to the request's port.
func Deallocate(name Name) error {
	const op = "mach_port_deallocate"
	k, err := getKernel(op)
	if err != nil {
		return err
	}
	return kernErr(op, name, k.deallocate(name))
}

// NameInfo is one entry of the task's IPC space.
type NameInfo struct {
	Name Name
	Type PortType
}

// Names lists every name in this task's IPC space (mach_port_names), for leak checks.
func Names() ([]NameInfo, error) {
	const op = "mach_port_names"
	k, err := getKernel(op)
	if err != nil {
		return nil, err
	}
	names, types, kr := k.names()
	if err := kernErr(op, NameNull, kr); err != nil {
		return nil, err
	}
	out := make([]NameInfo, len(names))
	for i := range names {
		out[i].Name = names[i]
		if i < len(types) {
			out[i].Type = types[i]
		}
	}
	return out, nil
}
