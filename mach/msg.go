package mach

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/abi"
)

// SendOptions adjust Send.
type SendOptions struct {
	// OOLThreshold, when positive, sends a Body longer than this many bytes out-of-line instead:
	// it goes as one more OOLDescriptor (virtual copy) after the message's own descriptors, and
	// Body is sent empty. Without it, a message over MaxInlineSize fails with ErrMessageTooLarge.
	OOLThreshold int
}

// Send sends m. A deadline on ctx becomes the Mach send timeout (MACH_SEND_TIMEOUT); without
// one, a send to a full queue blocks until there is room (Mach cannot interrupt a blocked send,
// so cancellation without a deadline is only checked before sending).
//
// On success, the rights m moves (MOVE_SEND, MOVE_SEND_ONCE, MOVE_RECEIVE built with MoveSendOf
// and friends) and regions sent with Deallocate are gone: their Close does nothing. On failure
// Mach's rules apply and Send keeps the books straight:
//   - errors found before the kernel took the message (MACH_SEND_INVALID_DEST, _HEADER, _REPLY,
//     _VOUCHER, MACH_SEND_TOO_LARGE, ...): every right and region is still the caller's;
//   - MACH_SEND_TIMED_OUT, _INTERRUPTED, _NO_BUFFER: the kernel hands the message back
//     (pseudo-receive); moved rights stay the caller's (a moved receive right may get a new
//     name, which its ReceiveRight follows, and stays in its port sets), and the extra rights or
//     memory copies the kernel made are released;
//   - MACH_SEND_NO_GRANT_DEST, _MSG_FILTERED: the header's rights were destroyed, the
//     descriptors' are still the caller's;
//   - MACH_SEND_INVALID_RIGHT, _INVALID_MEMORY: the header and the descriptors before the bad one
//     were destroyed; Send checks which moved rights are gone, and treats regions handed over
//     with Deallocate as gone (at worst a leak, never a double free).
//
// Releasing the extra rights of a handed-back message has Mach's usual effects: a released
// MAKE_SEND_ONCE right sends MACH_NOTIFY_SEND_ONCE to its port, and a released MAKE_SEND right
// may fire an armed no-senders request. MACH_SEND_INTERRUPTED is retried with the remaining
// deadline by resending the message as the kernel handed it back, with the rights it made and
// the memory it copied (as libsyscall's mach_msg does), so an interrupted send that then succeeds
// releases nothing and fires no notification.
func Send(ctx context.Context, m *Message) error { return SendWithOptions(ctx, m, SendOptions{}) }

// SendWithOptions is Send with options.
func SendWithOptions(ctx context.Context, m *Message, opts SendOptions) error {
	const op = "mach_msg send"
	k, err := getKernel(op)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = SendTimedOut
		}
		return &OpError{Op: op, Name: m.Remote.Name, Err: err}
	}
	if opts.OOLThreshold > 0 && len(m.Body) > opts.OOLThreshold {
		return sendBodyOutOfLine(ctx, m, opts)
	}
	if err := m.checkSendable(); err != nil {
		return &OpError{Op: op, Name: m.Remote.Name, Err: err}
	}
	var pinner runtime.Pinner
	defer pinner.Unpin()
	buf, err := m.encodeForSend(&pinner)
	if err != nil {
		return &OpError{Op: op, Name: m.Remote.Name, Err: err}
	}
	timeout, err := timeoutFor(ctx)
	if err != nil {
		return &OpError{Op: op, Name: m.Remote.Name, Err: err}
	}
	snaps := m.snapshotMoves(k)
	ool, resent := m.oolData, false
	for {
		ret := k.send(buf, ool, timeout)
		switch {
		case ret == abi.MACH_MSG_SUCCESS:
			m.markSent()
			return nil
		case ret == sendMoveReceiveRemote:
			if resent {
				m.releaseHandedBack(k, buf, false)
			}
			return &OpError{Op: op, Name: m.Remote.Name, Err: ErrMoveReceiveUnsupported}
		}
		if MsgReturn(ret).base() != SendInterrupted {
			m.afterFailedSend(k, buf, ret, snaps, resent)
			return &OpError{Op: op, Name: m.Remote.Name, Err: MsgReturn(ret)}
		}
		// A signal interrupted a blocked send and the kernel handed the message back, with the
		// rights it made or copied and the memory it copied. Resend it as it came back, with
		// what is left of the deadline: releasing those rights to make them again would be
		// seen (MACH_NOTIFY_SEND_ONCE at a reply port, an armed no-senders request firing).
		var back Message
		if back.decode(buf) != nil {
			// Not handed back after all: nothing was taken, send the message again.
			m.afterFailedSend(k, buf, ret, snaps, resent)
			if buf, err = m.encodeForSend(&pinner); err != nil {
				return &OpError{Op: op, Name: m.Remote.Name, Err: err}
			}
			ool, resent = m.oolData, false
		} else {
			m.followRenames(&back)
			ool = m.prepareResend(buf, &back)
			resent = true
			snaps = m.snapshotMoves(k)
		}
		if timeout, err = timeoutFor(ctx); err != nil || ctx.Err() != nil {
			if resent {
				m.releaseHandedBack(k, buf, false)
			}
			return &OpError{Op: op, Name: m.Remote.Name, Err: MsgReturn(ret)}
		}
	}
}

// followRenames makes m name its moved rights as the handed-back message does (a receive right
// may come back under a new name), without releasing anything.
func (m *Message) followRenames(back *Message) {
	for _, pr := range m.pairsWith(back) {
		orig, got := pr.orig, pr.got
		if orig.IsNull() || !orig.Disposition.moves() {
			continue
		}
		if got.Name.Valid() {
			orig.Name = got.Name
			if orig.owner != nil {
				orig.owner.name.Store(uint32(got.Name))
			}
		}
	}
}

// prepareResend readies a handed-back buffer to be sent again as it is: the received right
// types are the move dispositions (MACH_MSG_TYPE_PORT_SEND is MOVE_SEND, and so on), so the
// rights go as they came back; each memory copy the kernel made is sent with deallocate set, so
// the send consumes it (a physical copy comes back without it). It returns the memory of the
// out-of-line descriptors, in order, as the kernel seam takes it.
func (m *Message) prepareResend(buf []byte, back *Message) [][]byte {
	ool := make([][]byte, 0, len(m.oolData))
	n := 0
	for i, d := range back.Descriptors {
		b, ok := d.(*OOLDescriptor)
		if !ok {
			continue
		}
		var data []byte
		if n < len(m.oolData) {
			data = m.oolData[n]
		}
		n++
		if orig, ok := m.descriptorAt(i).(*OOLDescriptor); ok {
			if sent, _, _ := orig.wireAddress(); b.Address != sent && b.Address != 0 {
				setDeallocate(buf, i)
				data = unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), uintptr(b.Address))), b.Size)
			}
		}
		ool = append(ool, data)
	}
	// The kernel's copies of out-of-line port arrays go with deallocate set, so that the send
	// consumes them as it does the memory copies.
	for i := range m.Descriptors {
		if _, size := m.handedBackArray(back, i); size > 0 {
			setDeallocate(buf, i)
		}
	}
	return ool
}

func (m *Message) descriptorAt(i int) Descriptor {
	if i < len(m.Descriptors) {
		return m.Descriptors[i]
	}
	return nil
}

// setDeallocate sets the deallocate flag of out-of-line descriptor i in an encoded message.
func setDeallocate(buf []byte, i int) {
	off := baseSize
	for j := 0; j < i && off+portDescriptorSize <= len(buf); j++ {
		if DescriptorType(buf[off+descriptorTypeByte]) == PortDescriptorType {
			off += portDescriptorSize
		} else {
			off += oolDescriptorSize
		}
	}
	if off+oolDescriptorSize <= len(buf) {
		buf[off+8] = 1
	}
}

// releaseHandedBack settles a handed-back message that will not be sent again: the buffer holds
// it as the kernel returned it, or as a resend that failed before copy-in left it. With
// headerGone, the kernel destroyed the header's rights (MACH_SEND_NO_GRANT_DEST and friends).
func (m *Message) releaseHandedBack(k kernel, buf []byte, headerGone bool) {
	var back Message
	if back.decode(buf) != nil {
		return
	}
	if headerGone {
		back.Remote, back.Local, back.Voucher = Port{}, Port{}, Port{}
	}
	m.takeBack(k, &back)
}

// encodeForSend encodes m into its reusable buffer and collects the memory of its out-of-line
// descriptors, pinning Go memory for the duration of the send.
func (m *Message) encodeForSend(pinner *runtime.Pinner) ([]byte, error) {
	m.oolData = m.oolData[:0]
	for _, d := range m.Descriptors {
		if o, ok := d.(*OOLDescriptor); ok {
			switch {
			case o.Region != nil:
				m.oolData = append(m.oolData, o.Region.Bytes())
			case len(o.Data) > 0:
				pinner.Pin(unsafe.SliceData(o.Data))
				m.oolData = append(m.oolData, o.Data)
			default:
				m.oolData = append(m.oolData, nil)
			}
		}
	}
	buf, err := m.Append(m.raw[:0])
	if err != nil {
		return nil, err
	}
	for _, d := range m.Descriptors {
		if o, ok := d.(*OOLPortsDescriptor); ok && len(o.names) > 0 {
			pinner.Pin(unsafe.SliceData(o.names)) // the kernel reads the array by address
		}
	}
	m.raw = buf
	return buf, nil
}

func sendBodyOutOfLine(ctx context.Context, m *Message, opts SendOptions) error {
	big := *m
	big.raw = nil
	big.Descriptors = append(append(make([]Descriptor, 0, len(m.Descriptors)+1), m.Descriptors...),
		&OOLDescriptor{Data: m.Body, Copy: VirtualCopy})
	big.Body = nil
	opts.OOLThreshold = 0
	return SendWithOptions(ctx, &big, opts)
}

// checkSendable refuses what the kernel would refuse or what would corrupt this process: bad
// dispositions, rights already given up, and Go memory offered for deallocation.
func (m *Message) checkSendable() error {
	if !m.Remote.Disposition.validForSend() {
		return fmt.Errorf("%w: destination disposition %v", ErrInvalidMessage, m.Remote.Disposition)
	}
	for _, p := range []Port{m.Remote, m.Local, m.Voucher} {
		if err := p.checkSendable(); err != nil {
			return err
		}
	}
	for i, d := range m.Descriptors {
		switch d := d.(type) {
		case *PortDescriptor:
			if !d.Port.Disposition.validForSend() {
				return fmt.Errorf("%w: descriptor %d: disposition %v", ErrInvalidMessage, i, d.Port.Disposition)
			}
			if err := d.Port.checkSendable(); err != nil {
				return fmt.Errorf("descriptor %d: %w", i, err)
			}
		case *OOLDescriptor:
			if d.Region != nil && d.Region.gone.Load() {
				return fmt.Errorf("descriptor %d: region: %w", i, ErrClosed)
			}
			if d.Region == nil && d.Data != nil && d.Deallocate {
				return fmt.Errorf("%w: descriptor %d: Deallocate needs a Region, not Go memory", ErrInvalidMessage, i)
			}
			if d.Region == nil && uint64(len(d.Data)) > math.MaxUint32 {
				return fmt.Errorf("%w: descriptor %d: %d bytes", ErrMessageTooLarge, i, len(d.Data))
			}
		case *OOLPortsDescriptor:
			disp, err := d.disposition()
			if err != nil {
				return fmt.Errorf("descriptor %d: %w", i, err)
			}
			if !disp.validForSend() {
				return fmt.Errorf("%w: descriptor %d: disposition %v", ErrInvalidMessage, i, disp)
			}
			if len(d.Ports) > MaxDescriptors {
				return fmt.Errorf("%w: descriptor %d: %d ports (limit %d)", ErrMessageTooLarge, i, len(d.Ports), MaxDescriptors)
			}
			for j, p := range d.Ports {
				if err := p.checkSendable(); err != nil {
					return fmt.Errorf("descriptor %d, port %d: %w", i, j, err)
				}
			}
		case *GuardedPortDescriptor:
			if !d.Port.Disposition.validForSend() {
				return fmt.Errorf("%w: descriptor %d: disposition %v", ErrInvalidMessage, i, d.Port.Disposition)
			}
			if err := d.Port.checkSendable(); err != nil {
				return fmt.Errorf("descriptor %d: %w", i, err)
			}
		}
	}
	return nil
}

// descriptorPorts points at every port the message's descriptors carry, in order: port
// descriptors, each entry of out-of-line port arrays, guarded ports.
func (m *Message) descriptorPorts() []*Port {
	var ports []*Port
	for _, d := range m.Descriptors {
		switch d := d.(type) {
		case *PortDescriptor:
			ports = append(ports, &d.Port)
		case *OOLPortsDescriptor:
			for i := range d.Ports {
				ports = append(ports, &d.Ports[i])
			}
		case *GuardedPortDescriptor:
			ports = append(ports, &d.Port)
		}
	}
	return ports
}

func (p Port) checkSendable() error {
	if p.owner != nil && p.owner.gone.Load() {
		return fmt.Errorf("port %v (%v): %w", p.Name, p.Disposition, ErrClosed)
	}
	return nil
}

// wireAddress is the address and size an OOL descriptor encodes.
func (d *OOLDescriptor) wireAddress() (uint64, uint32, error) {
	switch {
	case d.Region != nil:
		return uint64(d.Region.addr.Load()), uint32(d.Region.size), nil
	case len(d.Data) > 0:
		if uint64(len(d.Data)) > math.MaxUint32 {
			return 0, 0, ErrMessageTooLarge
		}
		return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(d.Data)))), uint32(len(d.Data)), nil
	case d.Data != nil:
		return 0, 0, nil
	}
	return d.Address, d.Size, nil
}

// markSent records what a successful send took away from the sender.
func (m *Message) markSent() {
	for _, p := range []Port{m.Remote, m.Local, m.Voucher} {
		p.consume()
	}
	for _, p := range m.descriptorPorts() {
		p.consume()
	}
	for _, d := range m.Descriptors {
		if d, ok := d.(*OOLDescriptor); ok && d.Region != nil && d.Deallocate {
			d.Region.gone.Store(true)
		}
	}
}

func (p Port) consume() {
	if p.owner != nil && p.Disposition.moves() {
		p.owner.gone.Store(true)
	}
}

// sendOutcome is what a failed send did with the message's rights and memory (xnu's
// mach_msg_trap_send, ipc_kmsg_copyin_header/_body, ipc_kmsg_copyout_pseudo).
type sendOutcome int

const (
	sendUntouched       sendOutcome = iota // refused before copyin: everything is still the caller's
	sendReturned                           // pseudo-received: handed back in the buffer
	sendHeaderDestroyed                    // header rights destroyed, descriptors untouched
	sendPartial                            // header and the descriptors before the bad one destroyed
)

func classifySendFailure(ret int32) sendOutcome {
	if ret&0x4000 != 0 {
		// The pseudo-receive ran into trouble copying descriptors out and ORed an ipc/rcv code
		// into the result: the message was still handed back.
		return sendReturned
	}
	switch MsgReturn(ret &^ abi.MACH_MSG_MASK) {
	case SendTimedOut, SendInterrupted, SendNoBuffer:
		return sendReturned
	case SendNoGrantDest, SendMsgFiltered:
		return sendHeaderDestroyed
	case SendInvalidRight, SendInvalidMemory:
		return sendPartial
	}
	return sendUntouched
}

// moveSnapshot records, before a send, the user references of each right a descriptor moves,
// so that after a partial failure the rights the kernel took can be told from those it left.
type moveSnapshot struct {
	port *Port
	typ  PortType
	refs uint32
}

func (m *Message) snapshotMoves(k kernel) []moveSnapshot {
	var snaps []moveSnapshot
	for _, p := range m.descriptorPorts() {
		if p.owner == nil || !p.Disposition.moves() {
			continue
		}
		t, _ := k.portType(p.Name)
		refs, _ := k.getRefs(p.Name, RightSend)
		snaps = append(snaps, moveSnapshot{port: p, typ: t, refs: refs})
	}
	return snaps
}

// afterFailedSend keeps the caller's rights and regions true to what the kernel did. After a
// resend of a handed-back message (resent), what the kernel left untouched is that message,
// whose extra rights and memory copies are released.
func (m *Message) afterFailedSend(k kernel, buf []byte, ret int32, snaps []moveSnapshot, resent bool) {
	outcome := classifySendFailure(ret)
	switch {
	case resent && outcome == sendUntouched:
		m.releaseHandedBack(k, buf, false)
		return
	case resent && outcome == sendHeaderDestroyed:
		m.releaseHandedBack(k, buf, true) // consumes the header's moved rights too
		return
	}
	switch outcome {
	case sendReturned:
		var back Message
		if back.decode(buf) != nil {
			return // the buffer was not rewritten: nothing was taken
		}
		m.takeBack(k, &back)
	case sendHeaderDestroyed:
		for _, p := range []Port{m.Remote, m.Local, m.Voucher} {
			p.consume()
		}
	case sendPartial:
		for _, p := range []Port{m.Remote, m.Local, m.Voucher} {
			p.consume()
		}
		for _, sn := range snaps {
			t, kr := k.portType(sn.port.Name)
			refs, _ := k.getRefs(sn.port.Name, RightSend)
			var taken bool
			switch sn.port.Disposition {
			case MoveReceive:
				taken = kr != abi.KERN_SUCCESS || !t.Has(TypeReceive)
			case MoveSendOnce:
				taken = kr != abi.KERN_SUCCESS || !t.Has(TypeSendOnce)
			case MoveSend:
				taken = kr != abi.KERN_SUCCESS || refs < sn.refs
			}
			if taken {
				sn.port.consume()
			}
		}
		// Which regions the kernel unmapped cannot be told cheaply; treating them as gone can
		// only leak, never free memory twice.
		for _, d := range m.Descriptors {
			if o, ok := d.(*OOLDescriptor); ok && o.Region != nil && o.Deallocate {
				o.Region.gone.Store(true)
			}
		}
	}
}

// takeBack reconciles a pseudo-received copy of m: rights m moved come back (perhaps under new
// names), rights the kernel made or copied for the message are extra and released, and memory
// copies are unmapped unless they replace a region m handed over.
func (m *Message) takeBack(k kernel, back *Message) {
	pairs := m.pairsWith(back)
	if len(back.Descriptors) == len(m.Descriptors) {
		for i, d := range m.Descriptors {
			switch d := d.(type) {
			case *OOLDescriptor:
				b, ok := back.Descriptors[i].(*OOLDescriptor)
				if !ok {
					continue
				}
				sent, _, _ := d.wireAddress()
				if b.Address == sent || b.Address == 0 {
					continue // not copied out again
				}
				if d.Region != nil && d.Deallocate {
					d.Region.addr.Store(uintptr(b.Address))
				} else {
					k.vmDeallocate(uintptr(b.Address), int(b.Size))
				}
			}
		}
	}
	for _, pr := range pairs {
		orig, got := pr.orig, pr.got
		if orig.IsNull() || got.Disposition == orig.Disposition && !orig.Disposition.moves() {
			continue // not copied in
		}
		switch {
		case orig.Disposition.moves() && got.Name.Valid():
			orig.Name = got.Name // a retry sends the right under the name it has now
			if orig.owner != nil {
				orig.owner.name.Store(uint32(got.Name))
			}
		case orig.Disposition.moves():
			orig.consume() // it came back as a dead name (MACH_PORT_DEAD): nothing left to hold
		case got.Name.Valid() && (got.Disposition == PortSend || got.Disposition == PortSendOnce):
			k.deallocate(got.Name)
		}
	}
	// The arrays the kernel copied out port arrays into are this task's memory now.
	for i := range m.Descriptors {
		if addr, size := m.handedBackArray(back, i); size > 0 {
			k.vmDeallocate(addr, size)
		}
	}
}

// portPair is a port of the message and the port in the same place of a handed-back copy.
type portPair struct {
	orig *Port // the message's own field, renamed when a moved right comes back renamed
	got  Port
}

// pairsWith pairs m's header and descriptor ports with those of a handed-back copy: port
// descriptors, guarded ports, and the entries of out-of-line port arrays, which come back (as
// received descriptors) in an array at the address the copy names.
func (m *Message) pairsWith(back *Message) []portPair {
	pairs := []portPair{{&m.Remote, back.Remote}, {&m.Local, back.Local}, {&m.Voucher, back.Voucher}}
	if len(back.Descriptors) == len(m.Descriptors) {
		for i, d := range m.Descriptors {
			switch d := d.(type) {
			case *PortDescriptor:
				if b, ok := back.Descriptors[i].(*PortDescriptor); ok {
					pairs = append(pairs, portPair{&d.Port, b.Port})
				}
			case *GuardedPortDescriptor:
				if b, ok := back.Descriptors[i].(*OtherDescriptor); ok && b.Kind == GuardedPortDescriptorType {
					pairs = append(pairs, portPair{&d.Port, Port{Name: Name(le.Uint32(b.Raw[12:])), Disposition: Disposition(b.Raw[10])}})
				}
			case *OOLPortsDescriptor:
				names, disp, ok := handedBackPorts(back.Descriptors[i], len(d.Ports))
				for j := range d.Ports {
					if ok {
						pairs = append(pairs, portPair{&d.Ports[j], Port{Name: Name(names[j]), Disposition: disp}})
					}
				}
			}
		}
	}
	return pairs
}

// handedBackPorts reads the names of an out-of-line port array in a handed-back copy (the
// kernel copied them out into memory of this task: ipc_kmsg_copyout_ool_ports_descriptor), if
// the descriptor is one with count entries.
func handedBackPorts(d Descriptor, count int) ([]uint32, Disposition, bool) {
	b, ok := d.(*OtherDescriptor)
	if !ok || b.Kind != OOLPortsDescriptorType || int(le.Uint32(b.Raw[12:])) != count {
		return nil, 0, false
	}
	addr := le.Uint64(b.Raw[0:])
	if count == 0 || addr == 0 {
		return nil, Disposition(b.Raw[10]), count == 0
	}
	return namesAt(addr, count), Disposition(b.Raw[10]), true
}

// namesAt is the array of count port names at a raw address a message names: memory the kernel
// mapped into this task, or a caller's pinned Go array being sent, which checkptr would refuse
// to rebuild from an integer.
//
//go:nocheckptr
func namesAt(addr uint64, count int) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Add(unsafe.Pointer(nil), uintptr(addr))), count)
}

// handedBackArray is the address and size of the memory the kernel made for out-of-line port
// array i of a handed-back copy of m, or 0 when it is m's own array (the buffer was not
// rewritten) or there is none.
func (m *Message) handedBackArray(back *Message, i int) (uintptr, int) {
	d, ok := m.Descriptors[i].(*OOLPortsDescriptor)
	if !ok || len(back.Descriptors) != len(m.Descriptors) {
		return 0, 0
	}
	b, ok := back.Descriptors[i].(*OtherDescriptor)
	if !ok || b.Kind != OOLPortsDescriptorType {
		return 0, 0
	}
	addr, count := le.Uint64(b.Raw[0:]), le.Uint32(b.Raw[12:])
	var sent uint64
	if len(d.names) > 0 {
		sent = uint64(uintptr(unsafe.Pointer(unsafe.SliceData(d.names))))
	}
	if addr == 0 || addr == sent || count == 0 {
		return 0, 0
	}
	return uintptr(addr), int(count) * 4
}

// timeoutFor turns ctx's deadline into a Mach timeout in milliseconds; -1 means none.
func timeoutFor(ctx context.Context) (int, error) {
	d, ok := ctx.Deadline()
	if !ok {
		return -1, nil
	}
	left := time.Until(d)
	if left <= 0 {
		return 0, nil
	}
	ms := (left + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxInt32 {
		return -1, nil
	}
	return int(ms), nil
}

// ReceiveOptions adjust Receive.
type ReceiveOptions struct {
	// BufferSize is the initial receive buffer (default 4 KiB, and at least enough for a header
	// and the trailer). Receive grows it for larger messages, up to MaxSize.
	BufferSize int
	// MaxSize is the largest message (msgh_size) Receive accepts (default 64 MiB), whatever
	// BufferSize is: the kernel is never given room for more than MaxSize and the trailer, so a
	// larger message fails with MACH_RCV_TOO_LARGE exactly as a Mach receive into a buffer of
	// that size does (xnu's ipc_mqueue_select_on_thread): it stays queued (MACH_RCV_LARGE), or,
	// with Exact, is destroyed.
	MaxSize int
	// Exact receives without MACH_RCV_LARGE: a message that does not fit BufferSize (less the
	// trailer) or MaxSize is destroyed by the kernel and Receive fails with MACH_RCV_TOO_LARGE.
	// It is also how to discard a message that exceeds MaxSize and would otherwise stay at the
	// head of the queue.
	Exact bool
	// Trailer chooses the trailer the kernel appends (MACH_RCV_TRAILER_ELEMENTS, from NULL to
	// AV); the default is the audit trailer. Message.Trailer holds the fields it covers.
	// ParseNotification needs at least the audit trailer to tell the kernel's messages apart.
	Trailer TrailerElements
	// Accept, if set, decides whether to keep a message; an error makes Receive destroy the
	// message (mach_msg_destroy) and return an error wrapping ErrRejected and the Accept error.
	// Without it, messages carrying descriptors this package does not adopt (out-of-line port
	// arrays, guarded ports, volatile memory) are rejected.
	Accept func(*Message) error
}

const (
	defaultReceiveBuffer = 4 << 10
	defaultMaxReceive    = 64 << 20
)

// Receive waits for a message on from (a *ReceiveRight or *PortSet) and decodes it into m,
// reusing m's buffers. A deadline on ctx becomes the Mach receive timeout (one already past
// polls the queue once); cancelling ctx wakes the receive promptly. The trailer carries the sender's audit token.
//
// The rights and out-of-line regions in the received message are the caller's: take them with
// TakeRemote, TakePort and TakeRegion, and release the rest with Destroy.
//
// A port (or port set) destroyed while Receive waits on it makes Receive fail with
// RcvPortChanged, on every platform and however the wait is made, as xnu answers a thread
// blocked on it (ipc_mqueue_receive_results: THREAD_RESTART gives MACH_RCV_PORT_CHANGED). On
// macOS a receive right moved away (sent in a message) does the same.
func Receive(ctx context.Context, from Receiver, m *Message) error {
	return ReceiveWithOptions(ctx, from, m, ReceiveOptions{})
}

// ReceiveWithOptions is Receive with options.
func ReceiveWithOptions(ctx context.Context, from Receiver, m *Message, opts ReceiveOptions) error {
	const op = "mach_msg receive"
	k, err := getKernel(op)
	if err != nil {
		return err
	}
	name, err := from.receiveName()
	if err != nil {
		return err
	}
	if opts.BufferSize <= 0 {
		opts.BufferSize = defaultReceiveBuffer
	}
	if opts.MaxSize <= 0 {
		opts.MaxSize = defaultMaxReceive
	}
	if !opts.Trailer.valid() {
		return &OpError{Op: op, Name: name, Err: fmt.Errorf("%w: trailer %v", KernInvalidValue, opts.Trailer)}
	}
	// The kernel gets room for the message and the trailer it asked for, and never for more
	// than MaxSize: then a message over MaxSize is refused by the kernel itself, whether or not
	// it would have fit BufferSize, and stays queued or is destroyed as Mach decides.
	trailer := opts.Trailer.Size()
	limit := max(opts.MaxSize+trailer, headerSize+trailer)
	size := min(max(opts.BufferSize, headerSize+trailer), limit)
	if !opts.Exact && cap(m.raw) > size {
		size = min(cap(m.raw), limit)
	}
	for {
		if cap(m.raw) < size {
			m.raw = make([]byte, size)
		}
		buf := m.raw[:size]
		kctx := ctx
		timeout, _ := timeoutFor(ctx)
		if err := ctx.Err(); err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				return &OpError{Op: op, Name: name, Err: err}
			}
			// A deadline already past polls, as a Mach timeout of 0 does: a queued message is
			// returned, an empty queue gives MACH_RCV_TIMED_OUT at once.
			kctx, timeout = context.Background(), 0
		}
		ret := k.receive(kctx, name, buf, !opts.Exact, opts.Trailer, timeout)
		switch {
		case ret == abi.MACH_MSG_SUCCESS:
			return m.adopt(k, buf, opts)
		case ret == rcvMalformed:
			return &OpError{Op: op, Name: name, Err: fmt.Errorf("%w: dropped a message a peer wrote", ErrInvalidMessage)}
		case ret == rcvCanceled:
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &OpError{Op: op, Name: name, Err: RcvTimedOut} // as if the kernel timed out
			}
			return &OpError{Op: op, Name: name, Err: ctx.Err()}
		case ret == abi.MACH_RCV_TOO_LARGE && !opts.Exact:
			need := int(le.Uint32(buf[offSize:])) + trailer
			if need > limit || need <= size {
				return &OpError{Op: op, Name: name, Err: fmt.Errorf("%w (%d bytes; MaxSize %d): %w",
					ErrMessageTooLarge, need-trailer, opts.MaxSize, MsgReturn(ret))}
			}
			size = need
		case ret == abi.MACH_RCV_INTERRUPTED:
			continue // a signal: wait again with what is left of the deadline
		case ret&^abi.MACH_MSG_MASK == abi.MACH_RCV_BODY_ERROR:
			// The message was dequeued but could not be copied out whole: what did arrive is
			// in buf and must not leak.
			k.destroy(buf)
			return &OpError{Op: op, Name: name, Err: MsgReturn(ret)}
		default:
			return &OpError{Op: op, Name: name, Err: MsgReturn(ret)}
		}
	}
}

// adopt decodes a received buffer into m, or destroys the message if it is malformed or
// rejected, so that nothing is ever half-adopted.
func (m *Message) adopt(k kernel, buf []byte, opts ReceiveOptions) error {
	const op = "mach_msg receive"
	raw := m.raw
	if err := m.decode(buf); err != nil {
		k.destroy(buf)
		m.raw = raw
		return &OpError{Op: op, Err: err}
	}
	m.raw = raw
	for _, d := range m.Descriptors {
		if o, ok := d.(*OOLDescriptor); ok {
			o.Region = newRegion(uintptr(o.Address), int(o.Size))
			o.Data = o.Region.Bytes()
		}
	}
	accept := opts.Accept
	if accept == nil {
		accept = acceptAdoptable
	}
	m.received = true
	if err := accept(m); err != nil {
		k.destroy(buf)
		m.forget()
		m.received = false
		return &OpError{Op: op, Name: m.Local.Name, Err: fmt.Errorf("%w: %w", ErrRejected, err)}
	}
	return nil
}

func acceptAdoptable(m *Message) error {
	for i, d := range m.Descriptors {
		if _, ok := d.(*OtherDescriptor); ok {
			return fmt.Errorf("descriptor %d has type %d, which this receiver does not adopt", i, d.Type())
		}
	}
	return nil
}

var errNotReceived = fmt.Errorf("mach: the message was not received: it holds no rights to take")

// forget drops every reference to rights and regions after they were destroyed elsewhere.
func (m *Message) forget() {
	m.Remote, m.Voucher = Port{}, Port{}
	for _, d := range m.Descriptors {
		switch d := d.(type) {
		case *PortDescriptor:
			d.Port = Port{}
		case *OOLDescriptor:
			if d.Region != nil {
				d.Region.gone.Store(true)
			}
			d.Region, d.Data = nil, nil
		}
	}
}

// TakeRemote returns the reply right that came with a received message (a *SendOnceRight or
// *SendRight), or nil if there is none; the message no longer holds it.
func (m *Message) TakeRemote() Right {
	if !m.received {
		return nil
	}
	r := rightFor(m.Remote)
	m.Remote = Port{}
	return r
}

// TakePort returns the right carried by port descriptor i; the message no longer holds it.
func (m *Message) TakePort(i int) (Right, error) {
	if !m.received {
		return nil, errNotReceived
	}
	if i < 0 || i >= len(m.Descriptors) {
		return nil, fmt.Errorf("mach: descriptor %d of %d", i, len(m.Descriptors))
	}
	d, ok := m.Descriptors[i].(*PortDescriptor)
	if !ok {
		return nil, fmt.Errorf("mach: descriptor %d is %T, not a port", i, m.Descriptors[i])
	}
	r := rightFor(d.Port)
	d.Port = Port{}
	return r, nil
}

// TakeRegion returns the memory of out-of-line descriptor i; the message no longer holds it.
func (m *Message) TakeRegion(i int) (*Region, error) {
	if !m.received {
		return nil, errNotReceived
	}
	if i < 0 || i >= len(m.Descriptors) {
		return nil, fmt.Errorf("mach: descriptor %d of %d", i, len(m.Descriptors))
	}
	d, ok := m.Descriptors[i].(*OOLDescriptor)
	if !ok || d.Region == nil {
		return nil, fmt.Errorf("mach: descriptor %d holds no region", i)
	}
	r := d.Region
	d.Region, d.Data = nil, nil
	return r, nil
}

// Destroy releases every right and region a received message still holds, as mach_msg_destroy
// does: the reply right, the voucher, port descriptors' rights and out-of-line memory. The
// receiving port (Local) is not a right the message holds and is left alone. On a message that
// was not filled by Receive (one built to send) it does nothing: the rights named there belong
// to the caller's typed values. Descriptors of kinds this package does not adopt, let through by
// a custom ReceiveOptions.Accept, are not released.
func (m *Message) Destroy() error {
	if !m.received {
		return nil
	}
	var errs []error
	for _, p := range []Port{m.Remote, m.Voucher} {
		if r := rightFor(p); r != nil {
			errs = append(errs, r.Close())
		}
	}
	m.Remote, m.Voucher = Port{}, Port{}
	for i := range m.Descriptors {
		switch d := m.Descriptors[i].(type) {
		case *PortDescriptor:
			if r, _ := m.TakePort(i); r != nil {
				errs = append(errs, r.Close())
			}
		case *OOLDescriptor:
			if d.Region != nil {
				r, _ := m.TakeRegion(i)
				errs = append(errs, r.Close())
			}
		}
	}
	return errors.Join(errs...)
}

// PeekOptions adjust Peek.
type PeekOptions struct {
	// Seqno is the sequence number of the message to look at; 0 means the first one queued
	// (xnu's ipc_mqueue_peek_locked).
	Seqno uint32
	// Trailer chooses the trailer to report, at most TrailerAudit (the default). The kernel
	// refuses more (mach_port_peek: KERN_INVALID_VALUE, so as not to reveal the port's context),
	// and so does Peek, before asking it.
	Trailer TrailerElements
}

// Peeked is what Peek reports of a queued message.
type Peeked struct {
	// Seqno is the message's sequence number, as its trailer will carry it.
	Seqno uint32
	// Size is the size mach_port_peek reports: that of the kernel's own representation of the
	// message, which is larger than the msgh_size it is received with (on current xnu by 8 bytes
	// for the header and 4 for each port descriptor; the emulation reports the same). A receive
	// buffer of Size plus the trailer holds the message.
	Size uint32
	// ID is the message's msgh_id.
	ID int32
	// Trailer is the trailer the message will be received with, as far as PeekOptions.Trailer
	// asks; its Size is the requested trailer's size.
	Trailer Trailer
}

// ErrNoMessage means that Peek found no queued message with the sequence number asked for (an
// empty queue, for the first one); it comes with mach_port_peek's KERN_FAILURE.
var ErrNoMessage = errors.New("no message queued with that sequence number")

// Peek looks at a message queued on r without receiving it (mach_port_peek): its sequence
// number, size, id and trailer. The message stays queued, and the next Receive gets it. Peek does
// not wait: with nothing queued it fails at once with ErrNoMessage.
func Peek(r *ReceiveRight, opts PeekOptions) (Peeked, error) {
	const op = "mach_port_peek"
	name, k, err := r.s.use(op)
	if err != nil {
		return Peeked{}, err
	}
	if !opts.Trailer.valid() || opts.Trailer.elements() > abi.MACH_RCV_TRAILER_AUDIT {
		return Peeked{}, &OpError{Op: op, Name: name, Err: fmt.Errorf("%w: trailer %v (at most the audit trailer)", KernInvalidValue, opts.Trailer)}
	}
	var tbuf [maxTrailerSize]byte
	res, kr := k.peek(name, opts.Seqno, opts.Trailer, tbuf[:])
	switch kr {
	case abi.KERN_SUCCESS:
	case abi.KERN_FAILURE:
		return Peeked{}, &OpError{Op: op, Name: name, Err: fmt.Errorf("%w (seqno %d): %w", ErrNoMessage, opts.Seqno, KernFailure)}
	default:
		return Peeked{}, kernErr(op, name, kr)
	}
	return Peeked{Seqno: res.seqno, Size: res.size, ID: res.id, Trailer: decodeTrailerFields(tbuf[:res.trailerLen])}, nil
}
