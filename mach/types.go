package mach

import "fmt"

// Name is a port name (mach_port_name_t): a task-local number that denotes rights in the task's
// IPC space. The same number means nothing in another process.
type Name uint32

// Reserved names.
const (
	NameNull Name = 0          // MACH_PORT_NULL: no port
	NameDead Name = 0xffffffff // MACH_PORT_DEAD: a right whose port is gone
)

// Valid reports whether the name is neither MACH_PORT_NULL nor MACH_PORT_DEAD.
func (n Name) Valid() bool { return n != NameNull && n != NameDead }

func (n Name) String() string { return fmt.Sprintf("%#x", uint32(n)) }

// PortRight is a mach_port_right_t: which kind of right an operation such as mod_refs concerns.
type PortRight uint32

// Right kinds.
const (
	RightSend     PortRight = 0 // MACH_PORT_RIGHT_SEND
	RightReceive  PortRight = 1 // MACH_PORT_RIGHT_RECEIVE
	RightSendOnce PortRight = 2 // MACH_PORT_RIGHT_SEND_ONCE
	RightPortSet  PortRight = 3 // MACH_PORT_RIGHT_PORT_SET
	RightDeadName PortRight = 4 // MACH_PORT_RIGHT_DEAD_NAME
)

func (r PortRight) String() string {
	switch r {
	case RightSend:
		return "send"
	case RightReceive:
		return "receive"
	case RightSendOnce:
		return "send-once"
	case RightPortSet:
		return "port-set"
	case RightDeadName:
		return "dead-name"
	}
	return fmt.Sprintf("right(%d)", uint32(r))
}

// PortType is a mach_port_type_t: the set of rights a name denotes, as mach_port_type reports.
type PortType uint32

// Port type bits.
const (
	TypeNone      PortType = 0x0        // MACH_PORT_TYPE_NONE
	TypeSend      PortType = 0x10000    // MACH_PORT_TYPE_SEND
	TypeReceive   PortType = 0x20000    // MACH_PORT_TYPE_RECEIVE
	TypeSendOnce  PortType = 0x40000    // MACH_PORT_TYPE_SEND_ONCE
	TypePortSet   PortType = 0x80000    // MACH_PORT_TYPE_PORT_SET
	TypeDeadName  PortType = 0x100000   // MACH_PORT_TYPE_DEAD_NAME
	TypeDNRequest PortType = 0x80000000 // MACH_PORT_TYPE_DNREQUEST
)

// Has reports whether every bit of t2 is set in t.
func (t PortType) Has(t2 PortType) bool { return t&t2 == t2 }

func (t PortType) String() string {
	names := []struct {
		bit  PortType
		name string
	}{{TypeReceive, "receive"}, {TypeSend, "send"}, {TypeSendOnce, "send-once"},
		{TypePortSet, "port-set"}, {TypeDeadName, "dead-name"}, {TypeDNRequest, "dnrequest"}}
	s := ""
	for _, n := range names {
		if t.Has(n.bit) {
			if s != "" {
				s += "+"
			}
			s += n.name
		}
	}
	if s == "" {
		return "none"
	}
	return s
}

// Disposition is a mach_msg_type_name_t: what a send does with a right it names (move, copy or
// make), or, in a received message, which right arrived.
type Disposition uint8

// Dispositions for sending, and the right types of received messages.
const (
	DispositionNone Disposition = 0  // MACH_MSG_TYPE_PORT_NONE
	MoveReceive     Disposition = 16 // MACH_MSG_TYPE_MOVE_RECEIVE: the receive right leaves the sender
	MoveSend        Disposition = 17 // MACH_MSG_TYPE_MOVE_SEND: one send uref leaves the sender
	MoveSendOnce    Disposition = 18 // MACH_MSG_TYPE_MOVE_SEND_ONCE: the send-once right leaves the sender
	CopySend        Disposition = 19 // MACH_MSG_TYPE_COPY_SEND: the sender keeps its send right
	MakeSend        Disposition = 20 // MACH_MSG_TYPE_MAKE_SEND: a new send right from the sender's receive right
	MakeSendOnce    Disposition = 21 // MACH_MSG_TYPE_MAKE_SEND_ONCE: a new send-once right from the receive right

	// Received right types: what a received message's port fields denote.
	PortReceive  Disposition = 16 // MACH_MSG_TYPE_PORT_RECEIVE
	PortSend     Disposition = 17 // MACH_MSG_TYPE_PORT_SEND
	PortSendOnce Disposition = 18 // MACH_MSG_TYPE_PORT_SEND_ONCE
)

func (d Disposition) String() string {
	switch d {
	case DispositionNone:
		return "none"
	case MoveReceive:
		return "MOVE_RECEIVE"
	case MoveSend:
		return "MOVE_SEND"
	case MoveSendOnce:
		return "MOVE_SEND_ONCE"
	case CopySend:
		return "COPY_SEND"
	case MakeSend:
		return "MAKE_SEND"
	case MakeSendOnce:
		return "MAKE_SEND_ONCE"
	}
	return fmt.Sprintf("disposition(%d)", uint8(d))
}

// validForSend reports whether d may appear in a message being sent.
func (d Disposition) validForSend() bool {
	return d >= MoveReceive && d <= MakeSendOnce
}

// moves reports whether sending with d takes the named right away from the sender.
func (d Disposition) moves() bool {
	return d == MoveReceive || d == MoveSend || d == MoveSendOnce
}

// Bits is a message header's msgh_bits: the three port dispositions and the complex flag.
type Bits uint32

// Header bit masks.
const (
	BitsComplex     Bits = 0x80000000 // MACH_MSGH_BITS_COMPLEX
	BitsRemoteMask  Bits = 0x1f       // MACH_MSGH_BITS_REMOTE_MASK
	BitsLocalMask   Bits = 0x1f00     // MACH_MSGH_BITS_LOCAL_MASK
	BitsVoucherMask Bits = 0x1f0000   // MACH_MSGH_BITS_VOUCHER_MASK
	BitsPortsMask   Bits = 0x1f1f1f   // MACH_MSGH_BITS_PORTS_MASK
	BitsUser        Bits = 0x801f1f1f // MACH_MSGH_BITS_USER
)

// MakeBits is MACH_MSGH_BITS_SET: the header bits for the given dispositions.
func MakeBits(remote, local, voucher Disposition, complex bool) Bits {
	b := Bits(remote)&BitsRemoteMask | Bits(local)<<8&BitsLocalMask | Bits(voucher)<<16&BitsVoucherMask
	if complex {
		b |= BitsComplex
	}
	return b
}

// Remote is MACH_MSGH_BITS_REMOTE.
func (b Bits) Remote() Disposition { return Disposition(b & BitsRemoteMask) }

// Local is MACH_MSGH_BITS_LOCAL.
func (b Bits) Local() Disposition { return Disposition((b & BitsLocalMask) >> 8) }

// Voucher is MACH_MSGH_BITS_VOUCHER.
func (b Bits) Voucher() Disposition { return Disposition((b & BitsVoucherMask) >> 16) }

// Complex is MACH_MSGH_BITS_IS_COMPLEX.
func (b Bits) Complex() bool { return b&BitsComplex != 0 }

// Other is MACH_MSGH_BITS_OTHER: every bit that is not a port disposition.
func (b Bits) Other() Bits { return b &^ BitsPortsMask }

// CopyOption is a mach_msg_copy_options_t: how the kernel carries out-of-line memory.
type CopyOption uint8

// Copy options.
const (
	PhysicalCopy CopyOption = 0 // MACH_MSG_PHYSICAL_COPY
	VirtualCopy  CopyOption = 1 // MACH_MSG_VIRTUAL_COPY
)

// DescriptorType is a mach_msg_descriptor_type_t.
type DescriptorType uint8

// Descriptor types.
const (
	PortDescriptorType        DescriptorType = 0 // MACH_MSG_PORT_DESCRIPTOR
	OOLDescriptorType         DescriptorType = 1 // MACH_MSG_OOL_DESCRIPTOR
	OOLPortsDescriptorType    DescriptorType = 2 // MACH_MSG_OOL_PORTS_DESCRIPTOR
	OOLVolatileDescriptorType DescriptorType = 3 // MACH_MSG_OOL_VOLATILE_DESCRIPTOR
	GuardedPortDescriptorType DescriptorType = 4 // MACH_MSG_GUARDED_PORT_DESCRIPTOR
)
