package mach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// fakeKernel records what the portable layer asks of the kernel, so the shared logic (right
// accounting, pseudo-receive reconciliation, buffer growth, rejection) is tested on every
// platform. It is not an emulation of Mach.
type fakeKernel struct {
	kernel // unimplemented calls panic

	sendRet   int32
	rewrite   func(buf []byte) // what the kernel writes back on a failed send
	sent      [][]byte
	queue     [][]byte // messages to deliver, each with its trailer
	destroyed int
	calls     []string
	types     map[Name]PortType
	ool       [][]byte // the out-of-line memory of the last send
	refs      map[Name]uint32
}

func installFake(t *testing.T) *fakeKernel {
	f := &fakeKernel{}
	old := sys
	sys = f
	t.Cleanup(func() { sys = old })
	return f
}

func (f *fakeKernel) record(format string, args ...any) int32 {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return abi.KERN_SUCCESS
}

func (f *fakeKernel) send(buf []byte, ool [][]byte, timeoutMS int) int32 {
	f.sent = append(f.sent, append([]byte(nil), buf...))
	f.ool = ool
	ret := f.sendRet
	if ret != 0 && f.rewrite != nil {
		f.rewrite(buf)
	}
	return ret
}

func (f *fakeKernel) receive(ctx context.Context, name Name, buf []byte, large bool, _ TrailerElements, timeoutMS int) int32 {
	if len(f.queue) == 0 {
		if ctx.Done() != nil {
			<-ctx.Done()
			return rcvCanceled
		}
		return abi.MACH_RCV_TIMED_OUT
	}
	next := f.queue[0]
	if len(next) > len(buf) {
		if large {
			le.PutUint32(buf[offSize:], uint32(len(next)-auditTrailerSize))
			return abi.MACH_RCV_TOO_LARGE
		}
		f.queue = f.queue[1:]
		return abi.MACH_RCV_TOO_LARGE
	}
	f.queue = f.queue[1:]
	copy(buf, next)
	return abi.MACH_MSG_SUCCESS
}

func (f *fakeKernel) destroy(buf []byte)      { f.destroyed++ }
func (f *fakeKernel) deallocate(n Name) int32 { return f.record("deallocate %v", n) }
func (f *fakeKernel) modRefs(n Name, r PortRight, d int32) int32 {
	return f.record("mod_refs %v %v %d", n, r, d)
}
func (f *fakeKernel) destruct(n Name, sr int32, g uint64) int32 {
	return f.record("destruct %v %d %#x", n, sr, g)
}
func (f *fakeKernel) vmDeallocate(addr uintptr, size int) int32 {
	return f.record("vm_deallocate %#x %d", addr, size)
}
func (f *fakeKernel) construct(o portOptions) (Name, int32) {
	f.record("construct flags=%#x qlimit=%d context=%#x", o.flags, o.queueLimit, o.context)
	return 0x1003, abi.KERN_SUCCESS
}

// withTrailer appends an audit trailer carrying pid.
func withTrailer(b []byte, pid uint32) []byte {
	t := make([]byte, auditTrailerSize)
	le.PutUint32(t[4:], auditTrailerSize)
	le.PutUint32(t[20+4*5:], pid)
	return append(b, t...)
}

func TestSendMarksMovedRightsGone(t *testing.T) {
	f := installFake(t)
	dest := AdoptSend(0x103)
	moved := AdoptSend(0x207)
	reply := AdoptReceive(0x303)
	m := &Message{Remote: CopySendOf(dest), Local: MakeSendOnceOf(reply), ID: 1,
		Descriptors: []Descriptor{&PortDescriptor{Port: MoveSendOf(moved)}}}
	require.NoError(t, Send(context.Background(), m))
	require.Len(t, f.sent, 1)
	require.NoError(t, moved.Close()) // already gone: no kernel call
	require.Empty(t, f.calls)
	// Sending a moved right again is refused before the kernel sees it.
	err := Send(context.Background(), m)
	require.ErrorIs(t, err, ErrClosed)
	require.Len(t, f.sent, 1)
	// The kept rights close normally, exactly once.
	require.NoError(t, dest.Close())
	require.NoError(t, dest.Close())
	require.Equal(t, []string{"deallocate 0x103"}, f.calls)
}

func TestSendFailureUntouched(t *testing.T) {
	f := installFake(t)
	f.sendRet = abi.MACH_SEND_INVALID_DEST
	moved := AdoptSend(0x207)
	m := &Message{Remote: MoveSendOf(moved)}
	err := Send(context.Background(), m)
	require.ErrorIs(t, err, SendInvalidDest)
	var op *OpError
	require.ErrorAs(t, err, &op)
	require.Equal(t, Name(0x207), op.Name)
	require.NoError(t, moved.Close()) // still ours
	require.Equal(t, []string{"deallocate 0x207"}, f.calls)
}

func TestSendFailureDestroyed(t *testing.T) {
	f := installFake(t)
	f.sendRet = abi.MACH_SEND_INVALID_RIGHT
	moved := AdoptSendOnce(0x207)
	m := &Message{Remote: MoveSendOnceOf(moved)}
	require.ErrorIs(t, Send(context.Background(), m), SendInvalidRight)
	require.NoError(t, moved.Close()) // the kernel destroyed it with the message
	require.Empty(t, f.calls)
}

// A timed-out send comes back pseudo-received: made and copied rights are extra and released,
// moved rights stay (a receive right may be renamed), memory copies are unmapped.
func TestSendTimedOutHandsBack(t *testing.T) {
	f := installFake(t)
	f.sendRet = abi.MACH_SEND_TIMED_OUT
	dest := AdoptSend(0x103)
	reply := AdoptReceive(0x303)
	movedRecv := AdoptReceive(0x407)
	region := newRegion(0x9000, 8192)
	data := []byte("go memory")
	m := &Message{Remote: CopySendOf(dest), Local: MakeSendOnceOf(reply), ID: 5,
		Descriptors: []Descriptor{
			&PortDescriptor{Port: MoveReceiveOf(movedRecv)},
			&PortDescriptor{Port: MakeSendOf(reply)},
			&OOLDescriptor{Data: data},
			&OOLDescriptor{Region: region, Deallocate: true},
		}}
	f.rewrite = func(buf []byte) {
		back := Message{
			Remote: Port{Name: 0x103, Disposition: PortSend}, Local: Port{Name: 0x503, Disposition: PortSendOnce}, ID: 5,
			Descriptors: []Descriptor{
				&PortDescriptor{Port: Port{Name: 0x607, Disposition: PortReceive}},
				&PortDescriptor{Port: Port{Name: 0x303, Disposition: PortSend}},
				&OOLDescriptor{Address: 0xa000, Size: uint32(len(data))},
				&OOLDescriptor{Address: 0xb000, Size: 8192},
			}}
		out, err := back.Append(nil)
		require.NoError(t, err)
		copy(buf, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := Send(ctx, m)
	require.ErrorIs(t, err, SendTimedOut)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ElementsMatch(t, []string{
		"deallocate 0x103",       // the extra send right COPY_SEND made
		"deallocate 0x503",       // the send-once right MAKE_SEND_ONCE made
		"deallocate 0x303",       // the send right MAKE_SEND made
		"vm_deallocate 0xa000 9", // the kernel's copy of Go memory
	}, f.calls)
	require.Equal(t, Name(0x607), movedRecv.Name(), "the moved receive right follows its new name")
	require.Equal(t, Name(0x607), m.Descriptors[0].(*PortDescriptor).Port.Name, "and so does the message, for a retry")
	require.Equal(t, uintptr(0xb000), region.addr.Load(), "the handed-over region comes back at its new address")
	f.calls = nil
	require.NoError(t, movedRecv.Close())
	require.Equal(t, []string{"mod_refs 0x607 receive -1"}, f.calls)
}

func TestSendRefusesGoMemoryDeallocate(t *testing.T) {
	f := installFake(t)
	m := &Message{Remote: Port{Name: 1, Disposition: CopySend},
		Descriptors: []Descriptor{&OOLDescriptor{Data: []byte("x"), Deallocate: true}}}
	require.ErrorIs(t, Send(context.Background(), m), ErrInvalidMessage)
	m = &Message{Remote: Port{Name: 1, Disposition: 3}}
	require.ErrorIs(t, Send(context.Background(), m), ErrInvalidMessage)
	require.Empty(t, f.sent)
}

func TestSendBodyOutOfLine(t *testing.T) {
	f := installFake(t)
	body := make([]byte, 10000)
	m := &Message{Remote: Port{Name: 1, Disposition: CopySend}, Body: body}
	require.NoError(t, SendWithOptions(context.Background(), m, SendOptions{OOLThreshold: 4000}))
	got, err := Decode(f.sent[0])
	require.NoError(t, err)
	require.Empty(t, got.Body)
	require.Len(t, got.Descriptors, 1)
	require.Equal(t, uint32(len(body)), got.Descriptors[0].(*OOLDescriptor).Size)
	require.Len(t, f.ool, 1)
	require.Equal(t, &body[0], &f.ool[0][0], "the body itself went out of line, not a copy")
}

func TestReceiveGrowsBuffer(t *testing.T) {
	f := installFake(t)
	big := Message{Remote: Port{Name: 0x903, Disposition: PortSendOnce}, Local: Port{Name: 0x1003}, ID: 7, Body: make([]byte, 10000)}
	b, err := big.Append(nil)
	require.NoError(t, err)
	f.queue = append(f.queue, withTrailer(b, 321))
	var m Message
	r := AdoptReceive(0x1003)
	require.NoError(t, ReceiveWithOptions(context.Background(), r, &m, ReceiveOptions{BufferSize: 100}))
	require.Equal(t, int32(7), m.ID)
	require.Len(t, m.Body, 10000)
	require.Equal(t, 321, m.Trailer.Audit.PID())
	reply := m.TakeRemote()
	require.IsType(t, &SendOnceRight{}, reply)
	require.Equal(t, Name(0x903), reply.Name())
	require.Nil(t, m.TakeRemote())
}

func TestReceiveTooLarge(t *testing.T) {
	f := installFake(t)
	big := Message{Remote: Port{Name: 1, Disposition: CopySend}, Body: make([]byte, 10000)}
	b, _ := big.Append(nil)
	f.queue = append(f.queue, withTrailer(b, 1))
	var m Message
	r := AdoptReceive(0x1003)
	err := ReceiveWithOptions(context.Background(), r, &m, ReceiveOptions{MaxSize: 5000})
	require.ErrorIs(t, err, ErrMessageTooLarge)
	require.ErrorIs(t, err, RcvTooLarge)
	require.Len(t, f.queue, 1, "with MACH_RCV_LARGE the message stays queued")
	err = ReceiveWithOptions(context.Background(), r, &m, ReceiveOptions{BufferSize: 1000, Exact: true})
	require.ErrorIs(t, err, RcvTooLarge)
	require.Empty(t, f.queue, "without MACH_RCV_LARGE the kernel drops it")
}

func TestReceiveRejectsAndDestroys(t *testing.T) {
	f := installFake(t)
	// A guarded port descriptor: not adopted by default.
	b := make([]byte, baseSize+otherDescriptorSize)
	le.PutUint32(b[offBits:], uint32(BitsComplex))
	le.PutUint32(b[offSize:], uint32(len(b)))
	le.PutUint32(b[offCount:], 1)
	b[baseSize+descriptorTypeByte] = byte(GuardedPortDescriptorType)
	f.queue = append(f.queue, withTrailer(b, 1))
	// A caller's policy refusing out-of-line memory.
	ool := Message{Remote: Port{Name: 0x903, Disposition: PortSend}, Descriptors: []Descriptor{&OOLDescriptor{Address: 0x5000, Size: 3}}}
	ob, _ := ool.Append(nil)
	f.queue = append(f.queue, withTrailer(ob, 1))
	// Garbage.
	f.queue = append(f.queue, []byte{1, 2, 3, 4, 200, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

	r := AdoptReceive(0x1003)
	var m Message
	err := Receive(context.Background(), r, &m)
	require.ErrorIs(t, err, ErrRejected)
	require.Equal(t, 1, f.destroyed)

	noOOL := errors.New("no out-of-line memory here")
	err = ReceiveWithOptions(context.Background(), r, &m, ReceiveOptions{Accept: func(m *Message) error {
		if len(m.Descriptors) > 0 {
			return noOOL
		}
		return nil
	}})
	require.ErrorIs(t, err, ErrRejected)
	require.ErrorIs(t, err, noOOL)
	require.Equal(t, 2, f.destroyed)
	require.Nil(t, m.TakeRemote(), "a rejected message holds nothing")

	err = Receive(context.Background(), r, &m)
	require.ErrorIs(t, err, ErrInvalidMessage)
	require.Equal(t, 3, f.destroyed)
	require.Empty(t, f.calls, "destroyed by the kernel, not released twice")
}

func TestReceiveDeadlineAndCancel(t *testing.T) {
	installFake(t)
	r := AdoptReceive(0x1003)
	var m Message
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	err := Receive(ctx, r, &m)
	require.ErrorIs(t, err, RcvTimedOut)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)

	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel2() }()
	err = Receive(ctx2, r, &m)
	require.ErrorIs(t, err, context.Canceled)
}

func TestDestroyReleasesEverything(t *testing.T) {
	f := installFake(t)
	in := Message{Remote: Port{Name: 0x903, Disposition: PortSendOnce}, Local: Port{Name: 0x1003}, Descriptors: []Descriptor{
		&PortDescriptor{Port: Port{Name: 0x207, Disposition: PortSend}},
		&PortDescriptor{Port: Port{Name: 0x307, Disposition: PortReceive}},
		&OOLDescriptor{Address: 0x5000, Size: 3},
	}}
	b, _ := in.Append(nil)
	f.queue = append(f.queue, withTrailer(b, 1))
	var m Message
	require.NoError(t, Receive(context.Background(), AdoptReceive(0x1003), &m))
	kept, err := m.TakePort(0)
	require.NoError(t, err)
	require.IsType(t, &SendRight{}, kept)
	require.NoError(t, m.Destroy())
	require.ElementsMatch(t, []string{"deallocate 0x903", "mod_refs 0x307 receive -1", "vm_deallocate 0x5000 3"}, f.calls)
	require.NoError(t, m.Destroy(), "a second Destroy releases nothing")
	require.Len(t, f.calls, 3)
}

func TestParseNotification(t *testing.T) {
	installFake(t)
	noSenders := func(pid uint32) *Message {
		m := Message{Local: Port{Name: 0x1003}, ID: int32(NotifyNoSenders), Body: make([]byte, ndrSize+4)}
		le.PutUint32(m.Body[ndrSize:], 3)
		b, _ := m.Append(nil)
		got, err := Decode(withTrailer(b, pid))
		require.NoError(t, err)
		return got
	}
	n, err := ParseNotification(noSenders(0))
	require.NoError(t, err)
	require.Equal(t, NotifyNoSenders, n.Kind)
	require.Equal(t, uint32(3), n.MakeSendCount)

	_, err = ParseNotification(noSenders(4242))
	require.ErrorIs(t, err, ErrForgedNotification)
	require.Contains(t, err.Error(), "4242")

	untrailed := Message{ID: int32(NotifySendOnce)}
	_, err = ParseNotification(&untrailed)
	require.ErrorIs(t, err, ErrForgedNotification)

	_, err = ParseNotification(&Message{ID: 1000})
	require.ErrorIs(t, err, ErrNotNotification)

	sendOnce := Message{Local: Port{Name: 0x1003}, ID: int32(NotifySendOnce)}
	b, _ := sendOnce.Append(nil)
	got, _ := Decode(withTrailer(b, 0))
	n, err = ParseNotification(got)
	require.NoError(t, err)
	require.Equal(t, NotifySendOnce, n.Kind)

	destroyed := Message{Local: Port{Name: 0x1003}, ID: int32(NotifyPortDestroyed),
		Descriptors: []Descriptor{&PortDescriptor{Port: Port{Name: 0x707, Disposition: PortReceive}}}}
	b, _ = destroyed.Append(nil)
	got, _ = Decode(withTrailer(b, 0))
	got.received = true // as Receive would leave it: the right is the caller's to take
	n, err = ParseNotification(got)
	require.NoError(t, err)
	require.Equal(t, Name(0x707), n.Right.Name())

	wrongSize := Message{ID: int32(NotifyDeadName), Body: make([]byte, 40)}
	b, _ = wrongSize.Append(nil)
	got, _ = Decode(withTrailer(b, 0))
	_, err = ParseNotification(got)
	require.ErrorIs(t, err, ErrInvalidMessage)
}

func TestNewPortOptions(t *testing.T) {
	f := installFake(t)
	r, err := NewPort(PortOptions{QueueLimit: 16, Guard: 0xfeed})
	require.NoError(t, err)
	require.Equal(t, []string{fmt.Sprintf("construct flags=%#x qlimit=16 context=0xfeed", abi.MPO_QLIMIT|abi.MPO_CONTEXT_AS_GUARD)}, f.calls)
	require.NoError(t, r.Close())
	require.NoError(t, r.Close())
	require.Equal(t, "destruct 0x1003 0 0xfeed", f.calls[1], "a guarded right is released with its guard")
	require.Len(t, f.calls, 2)
	_, err = NewPort(PortOptions{QueueLimit: QueueLimitMax + 1})
	require.ErrorIs(t, err, KernInvalidValue)
	_, err = NewPort(PortOptions{Immovable: true})
	require.ErrorIs(t, err, KernInvalidValue)
}

func (f *fakeKernel) moveMember(n, set Name) int32 { return f.record("move_member %v %v", n, set) }

func TestPortOptionsAndMembers(t *testing.T) {
	f := installFake(t)
	r, s, err := NewPortWithSendRight(PortOptions{Context: 0xc0})
	require.NoError(t, err)
	require.Equal(t, r.Name(), s.Name())
	require.Equal(t, fmt.Sprintf("construct flags=%#x qlimit=0 context=0xc0", abi.MPO_INSERT_SEND_RIGHT), f.calls[0])
	set := AdoptPortSet(0x2003)
	require.NoError(t, MoveMember(r, set))
	require.NoError(t, MoveMember(r, nil))
	require.Equal(t, []string{"move_member 0x1003 0x2003", "move_member 0x1003 0x0"}, f.calls[1:])
	require.NoError(t, set.Close())
	require.ErrorIs(t, MoveMember(r, set), ErrClosed)
}

func (f *fakeKernel) portType(n Name) (PortType, int32) {
	if t, ok := f.types[n]; ok {
		return t, abi.KERN_SUCCESS
	}
	return 0, abi.KERN_INVALID_NAME
}

func (f *fakeKernel) getRefs(n Name, r PortRight) (uint32, int32) {
	return f.refs[n], abi.KERN_SUCCESS
}

// A body error destroys the header and the descriptors before the bad one: Send asks the kernel
// which moved rights are gone.
func TestSendPartialFailure(t *testing.T) {
	f := installFake(t)
	f.sendRet = abi.MACH_SEND_INVALID_RIGHT
	dest := AdoptSendOnce(0x103)
	taken := AdoptSend(0x207)
	kept := AdoptReceive(0x307)
	f.types = map[Name]PortType{0x207: TypeSend, 0x307: TypeReceive}
	f.refs = map[Name]uint32{0x207: 2}
	m := &Message{Remote: MoveSendOnceOf(dest), Descriptors: []Descriptor{
		&PortDescriptor{Port: MoveSendOf(taken)},
		&PortDescriptor{Port: MoveReceiveOf(kept)},
	}}
	f.rewrite = func([]byte) { f.refs[0x207] = 1 } // the kernel took one send reference
	require.ErrorIs(t, Send(context.Background(), m), SendInvalidRight)
	require.NoError(t, dest.Close())
	require.NoError(t, taken.Close())
	require.Empty(t, f.calls, "the header right and the first descriptor's right went with the message")
	require.NoError(t, kept.Close())
	require.Equal(t, []string{"mod_refs 0x307 receive -1"}, f.calls, "the receive right was never taken")
}

func TestSendHeaderDestroyed(t *testing.T) {
	f := installFake(t)
	f.sendRet = abi.MACH_SEND_MSG_FILTERED
	dest := AdoptSendOnce(0x103)
	desc := AdoptSend(0x207)
	m := &Message{Remote: MoveSendOnceOf(dest), Descriptors: []Descriptor{&PortDescriptor{Port: MoveSendOf(desc)}}}
	require.ErrorIs(t, Send(context.Background(), m), SendMsgFiltered)
	require.NoError(t, dest.Close())
	require.NoError(t, desc.Close())
	require.Equal(t, []string{"deallocate 0x207"}, f.calls)
}

// An interrupted send is handed back and sent again, under the names its rights have now.
func TestSendInterruptedIsRetried(t *testing.T) {
	f := installFake(t)
	moved := AdoptReceive(0x407)
	dest := AdoptSend(0x103)
	m := &Message{Remote: CopySendOf(dest), ID: 3,
		Descriptors: []Descriptor{&PortDescriptor{Port: MoveReceiveOf(moved)}}}
	attempts := 0
	f.sendRet = abi.MACH_SEND_INTERRUPTED
	f.rewrite = func(buf []byte) {
		attempts++
		back := Message{Remote: Port{Name: 0x103, Disposition: PortSend}, ID: 3,
			Descriptors: []Descriptor{&PortDescriptor{Port: Port{Name: 0x507, Disposition: PortReceive}}}}
		out, _ := back.Append(nil)
		copy(buf, out)
		f.sendRet = abi.MACH_MSG_SUCCESS // the second attempt goes through
	}
	require.NoError(t, Send(context.Background(), m))
	require.Equal(t, 1, attempts)
	require.Len(t, f.sent, 2)
	again, err := Decode(f.sent[1])
	require.NoError(t, err)
	require.Equal(t, Name(0x507), again.Descriptors[0].(*PortDescriptor).Port.Name, "resent under its new name")
	require.Equal(t, Port{Name: 0x103, Disposition: PortSend}, again.Remote,
		"the send right the kernel copied for the message goes with it (PORT_SEND is MOVE_SEND)")
	require.Empty(t, f.calls, "nothing the kernel made for the first attempt was released")
	require.NoError(t, moved.Close(), "moved by the successful retry")
	require.Empty(t, f.calls)
	require.Equal(t, Name(0x507), moved.Name(), "the right followed its new name")
}
