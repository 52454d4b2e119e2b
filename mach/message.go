package mach

import (
	"encoding/binary"
	"fmt"
	"slices"
	"unsafe"

	"github.com/machport/machport/internal/abi"
)

// Port names a right in a message header or port descriptor, with its disposition. Build ports
// for sending with CopySendOf, MoveSendOf, MakeSendOf, MakeSendOnceOf, MoveSendOnceOf and
// MoveReceiveOf, so that a successful send can mark a moved right as gone. In a received message
// a Port holds the right that arrived (Disposition PortSend, PortSendOnce or PortReceive).
type Port struct {
	Name        Name
	Disposition Disposition
	owner       *rightState // the typed right this port came from, for moves; nil for raw names
}

// IsNull reports whether the port names nothing.
func (p Port) IsNull() bool { return p.Name == NameNull && p.Disposition == DispositionNone }

// Descriptor is one entry of a complex message's body: a *PortDescriptor, an *OOLDescriptor, or,
// only in messages to send, an *OOLPortsDescriptor or a *GuardedPortDescriptor (macOS only), or,
// only in received messages, an *OtherDescriptor.
type Descriptor interface {
	Type() DescriptorType
	wireSize() int
}

// PortDescriptor carries one port right (mach_msg_port_descriptor_t, 12 bytes).
type PortDescriptor struct {
	Port Port
}

// Type returns PortDescriptorType.
func (*PortDescriptor) Type() DescriptorType { return PortDescriptorType }
func (*PortDescriptor) wireSize() int        { return portDescriptorSize }

// OOLDescriptor carries out-of-line memory (mach_msg_ool_descriptor_t, 16 bytes, 4-aligned).
//
// To send, set Data (Go memory: the kernel copies or maps it; Deallocate must be false) or Region
// (memory from AllocateRegion or a received message; with Deallocate the send hands the region to
// the kernel and it is gone from this process). A descriptor with neither encodes Address and
// Size as given, which is for codecs and tests.
//
// In a received message Address and Size say where the kernel mapped the data; Receive also sets
// Region (owned by the caller: take it with Message.TakeRegion or let Message.Destroy free it)
// and Data, a view of the region valid until the region is closed.
type OOLDescriptor struct {
	Data       []byte
	Region     *Region
	Address    uint64
	Size       uint32
	Deallocate bool
	Copy       CopyOption
}

// Type returns OOLDescriptorType.
func (*OOLDescriptor) Type() DescriptorType { return OOLDescriptorType }
func (*OOLDescriptor) wireSize() int        { return oolDescriptorSize }

// OOLPortsDescriptor sends an array of port rights out of line (mach_msg_ool_ports_descriptor_t,
// 16 bytes): Mach gives the whole array one disposition, so every Port must have the same one
// (built with CopySendOf, MoveSendOf, MakeSendOf, MakeSendOnceOf, MoveSendOnceOf or
// MoveReceiveOf; NameNull entries travel as null). The array of names is Go memory the kernel
// copies (Copy chooses how); it is never handed over for deallocation.
//
// Only macOS carries it: the Linux emulation refuses the message with MACH_SEND_INVALID_TYPE,
// and Receive still gives a received one as an *OtherDescriptor.
type OOLPortsDescriptor struct {
	Ports []Port
	Copy  CopyOption
	names []uint32 // the array the kernel reads, built by Append
}

// Type returns OOLPortsDescriptorType.
func (*OOLPortsDescriptor) Type() DescriptorType { return OOLPortsDescriptorType }
func (*OOLPortsDescriptor) wireSize() int        { return oolPortsDescriptorSize }

// disposition is the array's disposition: that of its ports other than null ones, which must all
// agree.
func (d *OOLPortsDescriptor) disposition() (Disposition, error) {
	disp, first := CopySend, -1 // with only null entries nothing travels, but xnu wants a valid one
	for i, p := range d.Ports {
		switch {
		case p.IsNull():
		case first < 0:
			disp, first = p.Disposition, i
		case p.Disposition != disp:
			return 0, fmt.Errorf("%w: port %d is %v, port %d %v: an out-of-line port array has one disposition", ErrInvalidMessage, i, p.Disposition, first, disp)
		}
	}
	return disp, nil
}

// GuardFlags are a guarded port descriptor's mach_msg_guard_flags_t.
type GuardFlags uint16

// Guard flags (<mach/message.h>).
const (
	GuardFlagsNone            GuardFlags = 0 // MACH_MSG_GUARD_FLAGS_NONE
	GuardFlagImmovableReceive GuardFlags = 1 // MACH_MSG_GUARD_FLAGS_IMMOVABLE_RECEIVE: the receiver cannot move it on
	GuardFlagUnguardedOnSend  GuardFlags = 2 // MACH_MSG_GUARD_FLAGS_UNGUARDED_ON_SEND: it arrives unguarded
)

// GuardedPortDescriptor sends a receive right with a guard (mach_msg_guarded_port_descriptor_t,
// 16 bytes): Port is usually MoveReceiveOf(r), Context the guard it arrives with (or, with
// GuardFlagUnguardedOnSend, the sender's current guard), Flags what the guard means. The
// receiver must ask for guarded descriptors (MACH_RCV_GUARDED_DESC), which Receive does not yet:
// receive such messages with another Mach client.
//
// Only macOS carries it: the Linux emulation refuses the message with MACH_SEND_INVALID_TYPE.
type GuardedPortDescriptor struct {
	Port    Port
	Context uint64
	Flags   GuardFlags
}

// Type returns GuardedPortDescriptorType.
func (*GuardedPortDescriptor) Type() DescriptorType { return GuardedPortDescriptorType }
func (*GuardedPortDescriptor) wireSize() int        { return guardedPortDescriptorSize }

// OtherDescriptor is a received descriptor of a kind this package does not adopt (out-of-line
// ports, volatile memory, guarded ports). Receive rejects messages that carry one unless the
// caller's Accept function allows it; its raw bytes are kept for inspection.
type OtherDescriptor struct {
	Kind DescriptorType
	Raw  [16]byte
	size int
}

// Type returns the descriptor's kind.
func (d *OtherDescriptor) Type() DescriptorType { return d.Kind }
func (d *OtherDescriptor) wireSize() int        { return d.size }

// Trailer is a received message's format-0 trailer, as far as the receive asked for it
// (ReceiveOptions.Trailer; by default mach_msg_audit_trailer_t): the sequence number, the
// sender's identity as the kernel saw it and, with TrailerContext or TrailerAV, the receiving
// port's context. Fields beyond Size are zero.
type Trailer struct {
	Size    uint32        // msgh_trailer_size: 0 when the message had no trailer (e.g. decoded from bytes)
	Seqno   uint32        // msgh_seqno (from 12 bytes: mach_msg_seqno_trailer_t)
	Sender  SecurityToken // msgh_sender (from 20 bytes: mach_msg_security_trailer_t)
	Audit   AuditToken    // msgh_audit (from 52 bytes: mach_msg_audit_trailer_t)
	Context uint64        // msgh_context (from 60 bytes: mach_msg_context_trailer_t)
	AD      int32         // msgh_ad (68 bytes: mach_msg_mac_trailer_t)
	Labels  uint32        // msgh_labels.sender (68 bytes: mach_msg_mac_trailer_t)
}

// TrailerElements chooses the trailer a receive asks for (MACH_RCV_TRAILER_ELEMENTS). The zero
// value is the default, the audit trailer.
type TrailerElements uint8

// Trailer choices, smallest first. Each includes the fields of the ones before it.
const (
	TrailerDefault TrailerElements = iota // the audit trailer
	TrailerNull                           // MACH_RCV_TRAILER_NULL: mach_msg_trailer_t, 8 bytes
	TrailerSeqno                          // MACH_RCV_TRAILER_SEQNO: mach_msg_seqno_trailer_t, 12 bytes
	TrailerSender                         // MACH_RCV_TRAILER_SENDER: mach_msg_security_trailer_t, 20 bytes
	TrailerAudit                          // MACH_RCV_TRAILER_AUDIT: mach_msg_audit_trailer_t, 52 bytes
	TrailerContext                        // MACH_RCV_TRAILER_CTX: mach_msg_context_trailer_t, 60 bytes
	TrailerAV                             // MACH_RCV_TRAILER_AV: mach_msg_mac_trailer_t, 68 bytes
)

// elements is the MACH_RCV_TRAILER_* value.
func (t TrailerElements) elements() uint32 {
	switch t {
	case TrailerNull:
		return 0
	case TrailerSeqno:
		return 1
	case TrailerSender:
		return 2
	case TrailerContext:
		return 4
	case TrailerAV:
		return 7
	}
	return 3 // MACH_RCV_TRAILER_AUDIT, the default
}

// valid reports whether t is one of the choices.
func (t TrailerElements) valid() bool { return t <= TrailerAV }

// options is MACH_RCV_TRAILER_TYPE(MACH_MSG_TRAILER_FORMAT_0) | MACH_RCV_TRAILER_ELEMENTS(t).
func (t TrailerElements) options() int32 {
	return abi.MACH_MSG_TRAILER_FORMAT_0<<28 | int32(t.elements()&0xf)<<24
}

// Size is REQUESTED_TRAILER_SIZE: the bytes the trailer takes after the message.
func (t TrailerElements) Size() int {
	switch t {
	case TrailerNull:
		return minTrailerSize
	case TrailerSeqno:
		return seqnoTrailerSize
	case TrailerSender:
		return securityTrailerSize
	case TrailerContext:
		return contextTrailerSize
	case TrailerAV:
		return macTrailerSize
	}
	return auditTrailerSize
}

func (t TrailerElements) String() string {
	switch t {
	case TrailerDefault:
		return "default"
	case TrailerNull:
		return "NULL"
	case TrailerSeqno:
		return "SEQNO"
	case TrailerSender:
		return "SENDER"
	case TrailerAudit:
		return "AUDIT"
	case TrailerContext:
		return "CTX"
	case TrailerAV:
		return "AV"
	}
	return fmt.Sprintf("trailer(%d)", uint8(t))
}

// SecurityToken is a security_token_t: the sender's effective uid and gid.
type SecurityToken [2]uint32

// AuditToken is an audit_token_t. Its layout is xnu's (set_security_token_task_internal).
type AuditToken [8]uint32

// AUID returns the audit user id.
func (a AuditToken) AUID() uint32 { return a[0] }

// EUID returns the effective user id.
func (a AuditToken) EUID() uint32 { return a[1] }

// EGID returns the effective group id.
func (a AuditToken) EGID() uint32 { return a[2] }

// RUID returns the real user id.
func (a AuditToken) RUID() uint32 { return a[3] }

// RGID returns the real group id.
func (a AuditToken) RGID() uint32 { return a[4] }

// PID returns the sender's process id.
func (a AuditToken) PID() int { return int(int32(a[5])) }

// ASID returns the audit session id.
func (a AuditToken) ASID() uint32 { return a[6] }

// PIDVersion returns the pid version, which tells apart processes that reused a pid.
func (a AuditToken) PIDVersion() uint32 { return a[7] }

// IsKernel reports whether the token is the kernel's (KERNEL_AUDIT_TOKEN_VALUE: all zero), which
// is how notifications can be told from messages that only claim to be notifications.
func (a AuditToken) IsKernel() bool { return a == AuditToken{} }

// Message is one Mach message: the header's ports and id, descriptors, inline body, and, after a
// receive, the trailer.
//
// Sending: Remote is the destination (usually CopySendOf(send right)), Local an optional reply
// right (e.g. MakeSendOnceOf(reply port)). Receiving: as Mach delivers it, Remote holds the reply
// right that came with the message (if any), and Local names the port it arrived on; Local's
// disposition says how it was addressed (PortSend, or PortSendOnce for a reply) but it holds no
// right.
//
// Receive fills a Message with storage of its own and reuses it on the next Receive into the same
// value; a slice from a received message is valid until then. Take or Destroy what a received
// message holds before receiving into it again, or it leaks.
type Message struct {
	Remote  Port
	Local   Port
	Voucher Port
	ID      int32 // msgh_id
	// Complex forces MACH_MSGH_BITS_COMPLEX with no descriptors; a message with descriptors is
	// always complex. Set on receive from the header bits.
	Complex     bool
	Descriptors []Descriptor
	// Body is the inline data after the descriptors. A sent body is padded with zeros to a
	// multiple of 4 bytes (Mach's rule); a received Body includes that padding.
	Body    []byte
	Trailer Trailer

	// Size is msgh_size of a received or decoded message (without the trailer).
	Size uint32

	raw      []byte       // reusable buffer for encoding and receiving
	oolData  [][]byte     // the memory of the out-of-line descriptors being sent
	ownBody  []byte       // Body's storage when this package filled it, reused by the next decode
	ownDescs []Descriptor // Descriptors' storage likewise
	received bool         // filled by Receive: its rights and regions are the caller's to take
}

// Layout of the structures the codec reads and writes (<mach/message.h>, #pragma pack(4)).
// The ABI test checks each against the SDK for arm64 and x86_64.
const (
	headerSize          = 24 // mach_msg_header_t
	bodyCountSize       = 4  // mach_msg_body_t
	baseSize            = headerSize + bodyCountSize
	portDescriptorSize  = 12 // mach_msg_port_descriptor_t
	oolDescriptorSize   = 16 // mach_msg_ool_descriptor_t (64-bit)
	otherDescriptorSize = 16 // ool ports, volatile and guarded port descriptors (64-bit)
	minTrailerSize      = 8  // mach_msg_trailer_t
	seqnoTrailerSize    = 12 // mach_msg_seqno_trailer_t
	securityTrailerSize = 20 // mach_msg_security_trailer_t
	auditTrailerSize    = 52 // mach_msg_audit_trailer_t
	contextTrailerSize  = 60 // mach_msg_context_trailer_t
	macTrailerSize      = 68 // mach_msg_mac_trailer_t
	maxTrailerSize      = 68 // MAX_TRAILER_SIZE
	offTrailerContext   = 52 // msgh_context in the context and mac trailers
	offTrailerAD        = 60 // msgh_ad in the mac trailer
	offTrailerLabels    = 64 // msgh_labels in the mac trailer
	descriptorTypeByte  = 11 // the type field's byte in every descriptor

	oolPortsDescriptorSize    = 16 // mach_msg_ool_ports_descriptor_t (64-bit)
	guardedPortDescriptorSize = 16 // mach_msg_guarded_port_descriptor_t (64-bit)

	offBits    = 0
	offSize    = 4
	offRemote  = 8
	offLocal   = 12
	offVoucher = 16
	offID      = 20
	offCount   = 24
)

// MaxInlineSize is the largest message (header, descriptors and inline body) the Darwin kernel
// accepts: ipc_kmsg_max_body_space, 64 MiB * 3/4 minus MAX_TRAILER_SIZE. Larger sends fail with
// MACH_SEND_TOO_LARGE; send big payloads out-of-line.
const MaxInlineSize = 64<<20*3/4 - maxTrailerSize

// MaxDescriptors bounds the descriptor count the decoder accepts (xnu refuses more than 16383
// port rights in one message).
const MaxDescriptors = 16383

var le = binary.LittleEndian // both Darwin targets (arm64, x86_64) are little-endian

func round4(n int) int { return (n + 3) &^ 3 }

// EncodedSize returns msgh_size of the message as Encode would write it.
func (m *Message) EncodedSize() int {
	n := headerSize
	if m.isComplex() {
		n += bodyCountSize
		for _, d := range m.Descriptors {
			n += d.wireSize()
		}
	}
	return n + round4(len(m.Body))
}

func (m *Message) isComplex() bool { return m.Complex || len(m.Descriptors) > 0 }

// Bits returns the msgh_bits the message encodes to.
func (m *Message) Bits() Bits {
	return MakeBits(m.Remote.Disposition, m.Local.Disposition, m.Voucher.Disposition, m.isComplex())
}

// Append encodes the message as the kernel reads it, appending to dst. Out-of-line descriptors
// are written with the address of their Data or Region (or Address when both are absent).
func (m *Message) Append(dst []byte) ([]byte, error) {
	size := m.EncodedSize()
	if size > MaxInlineSize {
		return dst, fmt.Errorf("%w: %d bytes inline (limit %d): send the payload out-of-line", ErrMessageTooLarge, size, MaxInlineSize)
	}
	if len(m.Descriptors) > MaxDescriptors {
		return dst, fmt.Errorf("%w: %d descriptors (limit %d)", ErrMessageTooLarge, len(m.Descriptors), MaxDescriptors)
	}
	start := len(dst)
	dst = slices.Grow(dst, size)[:start+size]
	b := dst[start:]
	clear(b)
	le.PutUint32(b[offBits:], uint32(m.Bits()))
	le.PutUint32(b[offSize:], uint32(size))
	le.PutUint32(b[offRemote:], uint32(m.Remote.Name))
	le.PutUint32(b[offLocal:], uint32(m.Local.Name))
	le.PutUint32(b[offVoucher:], uint32(m.Voucher.Name))
	le.PutUint32(b[offID:], uint32(m.ID))
	off := headerSize
	if m.isComplex() {
		le.PutUint32(b[offCount:], uint32(len(m.Descriptors)))
		off = baseSize
		for i, d := range m.Descriptors {
			switch d := d.(type) {
			case *PortDescriptor:
				putPortDescriptor(b[off:], d.Port.Name, d.Port.Disposition)
			case *OOLDescriptor:
				addr, n, err := d.wireAddress()
				if err != nil {
					return dst[:start], fmt.Errorf("descriptor %d: %w", i, err)
				}
				putOOLDescriptor(b[off:], addr, n, d.Deallocate, d.Copy, OOLDescriptorType)
			case *OOLPortsDescriptor:
				disp, err := d.disposition()
				if err != nil {
					return dst[:start], fmt.Errorf("descriptor %d: %w", i, err)
				}
				d.names = d.names[:0]
				for _, p := range d.Ports {
					d.names = append(d.names, uint32(p.Name))
				}
				var addr uint64
				if len(d.names) > 0 {
					addr = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(d.names))))
				}
				putOOLPortsDescriptor(b[off:], addr, uint32(len(d.names)), d.Copy, disp)
			case *GuardedPortDescriptor:
				putGuardedPortDescriptor(b[off:], d.Port.Name, d.Port.Disposition, d.Context, d.Flags)
			case *OtherDescriptor:
				copy(b[off:off+d.size], d.Raw[:d.size])
			default:
				return dst[:start], fmt.Errorf("descriptor %d: unsupported type %T", i, d)
			}
			off += d.wireSize()
		}
	}
	copy(b[off:], m.Body)
	return dst, nil
}

// putPortDescriptor writes mach_msg_port_descriptor_t: name, pad1, then a 32-bit word holding
// pad2:16, disposition:8, type:8 (low bits first).
func putPortDescriptor(b []byte, name Name, disp Disposition) {
	le.PutUint32(b[0:], uint32(name))
	le.PutUint32(b[4:], 0)
	le.PutUint32(b[8:], uint32(disp)<<16|uint32(PortDescriptorType)<<24)
}

// putOOLDescriptor writes mach_msg_ool_descriptor_t (64-bit): address, then a 32-bit word holding
// deallocate:8, copy:8, pad1:8, type:8, then size.
func putOOLDescriptor(b []byte, addr uint64, size uint32, dealloc bool, cp CopyOption, typ DescriptorType) {
	le.PutUint64(b[0:], addr)
	var d uint32
	if dealloc {
		d = 1
	}
	le.PutUint32(b[8:], d|uint32(cp)<<8|uint32(typ)<<24)
	le.PutUint32(b[12:], size)
}

// putOOLPortsDescriptor writes mach_msg_ool_ports_descriptor_t (64-bit): address, then a 32-bit
// word holding deallocate:8 (never set: the array is Go memory), copy:8, disposition:8, type:8,
// then count.
func putOOLPortsDescriptor(b []byte, addr uint64, count uint32, cp CopyOption, disp Disposition) {
	le.PutUint64(b[0:], addr)
	le.PutUint32(b[8:], uint32(cp)<<8|uint32(disp)<<16|uint32(OOLPortsDescriptorType)<<24)
	le.PutUint32(b[12:], count)
}

// putGuardedPortDescriptor writes mach_msg_guarded_port_descriptor_t (64-bit): context, then a
// 32-bit word holding flags:16, disposition:8, type:8, then name.
func putGuardedPortDescriptor(b []byte, name Name, disp Disposition, context uint64, flags GuardFlags) {
	le.PutUint64(b[0:], context)
	le.PutUint32(b[8:], uint32(flags)|uint32(disp)<<16|uint32(GuardedPortDescriptorType)<<24)
	le.PutUint32(b[12:], uint32(name))
}

// Decode parses a message as the kernel delivers it: msgh_size bytes of message, then, if b is
// long enough, the trailer. It checks every size and count against b and never reads outside it;
// it does not touch out-of-line memory or rights (the addresses and names are only numbers).
func Decode(b []byte) (*Message, error) {
	m := new(Message)
	return m, m.decode(b)
}

func (m *Message) decode(b []byte) error {
	if len(b) < headerSize {
		return fmt.Errorf("%w: %d bytes, shorter than a header", ErrInvalidMessage, len(b))
	}
	bits := Bits(le.Uint32(b[offBits:]))
	size := le.Uint32(b[offSize:])
	if size < headerSize || uint64(size) > uint64(len(b)) {
		return fmt.Errorf("%w: msgh_size %d with %d bytes", ErrInvalidMessage, size, len(b))
	}
	m.Size = size
	m.Remote = Port{Name: Name(le.Uint32(b[offRemote:])), Disposition: bits.Remote()}
	m.Local = Port{Name: Name(le.Uint32(b[offLocal:])), Disposition: bits.Local()}
	m.Voucher = Port{Name: Name(le.Uint32(b[offVoucher:])), Disposition: bits.Voucher()}
	m.ID = int32(le.Uint32(b[offID:]))
	m.Complex = bits.Complex()
	m.received = false
	// Decode into storage of its own, never into slices the caller built (a message reused from
	// a send may still alias the caller's request).
	m.Descriptors = m.ownDescs[:0]
	defer func() { m.ownDescs = m.Descriptors }()
	body := b[headerSize:size]
	if m.Complex {
		if len(body) < bodyCountSize {
			return fmt.Errorf("%w: complex message of %d bytes has no descriptor count", ErrInvalidMessage, size)
		}
		count := le.Uint32(body)
		if count > MaxDescriptors || uint64(count)*portDescriptorSize > uint64(len(body)-bodyCountSize) {
			return fmt.Errorf("%w: %d descriptors do not fit in %d bytes", ErrInvalidMessage, count, size)
		}
		body = body[bodyCountSize:]
		for i := uint32(0); i < count; i++ {
			if len(body) < portDescriptorSize {
				return fmt.Errorf("%w: descriptor %d is truncated", ErrInvalidMessage, i)
			}
			typ := DescriptorType(body[descriptorTypeByte])
			switch typ {
			case PortDescriptorType:
				m.Descriptors = append(m.Descriptors, &PortDescriptor{Port: Port{
					Name: Name(le.Uint32(body)), Disposition: Disposition(body[10])}})
				body = body[portDescriptorSize:]
			case OOLDescriptorType, OOLPortsDescriptorType, OOLVolatileDescriptorType, GuardedPortDescriptorType:
				if len(body) < oolDescriptorSize {
					return fmt.Errorf("%w: descriptor %d is truncated", ErrInvalidMessage, i)
				}
				if typ == OOLDescriptorType {
					m.Descriptors = append(m.Descriptors, &OOLDescriptor{
						Address:    le.Uint64(body),
						Deallocate: body[8] != 0,
						Copy:       CopyOption(body[9]),
						Size:       le.Uint32(body[12:]),
					})
				} else {
					d := &OtherDescriptor{Kind: typ, size: otherDescriptorSize}
					copy(d.Raw[:], body[:otherDescriptorSize])
					m.Descriptors = append(m.Descriptors, d)
				}
				body = body[oolDescriptorSize:]
			default:
				return fmt.Errorf("%w: descriptor %d has unknown type %d", ErrInvalidMessage, i, typ)
			}
		}
	}
	m.ownBody = append(m.ownBody[:0], body...)
	m.Body = m.ownBody
	m.Trailer = Trailer{}
	return m.decodeTrailer(b[size:])
}

// decodeTrailer reads as much of a format-0 trailer as both b and msgh_trailer_size allow.
func (m *Message) decodeTrailer(t []byte) error {
	if len(t) < minTrailerSize {
		return nil // no trailer (bytes that did not come from a receive)
	}
	typ, size := le.Uint32(t[0:]), le.Uint32(t[4:])
	if typ != 0 || size < minTrailerSize || uint64(size) > uint64(len(t)) || size > maxTrailerSize {
		return fmt.Errorf("%w: trailer type %d size %d with %d bytes", ErrInvalidMessage, typ, size, len(t))
	}
	m.Trailer = decodeTrailerFields(t[:size])
	return nil
}

// decodeTrailerFields reads the fields of a format-0 trailer that fit in t, which the caller
// has checked; Size is len(t).
func decodeTrailerFields(t []byte) Trailer {
	tr := Trailer{Size: uint32(len(t))}
	if len(t) >= seqnoTrailerSize {
		tr.Seqno = le.Uint32(t[8:])
	}
	if len(t) >= securityTrailerSize {
		tr.Sender = SecurityToken{le.Uint32(t[12:]), le.Uint32(t[16:])}
	}
	if len(t) >= auditTrailerSize {
		for i := range tr.Audit {
			tr.Audit[i] = le.Uint32(t[20+4*i:])
		}
	}
	if len(t) >= contextTrailerSize {
		tr.Context = le.Uint64(t[offTrailerContext:])
	}
	if len(t) >= macTrailerSize {
		tr.AD = int32(le.Uint32(t[offTrailerAD:]))
		tr.Labels = le.Uint32(t[offTrailerLabels:])
	}
	return tr
}
