//go:build linux

package mach_test

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// Faults a real kernel produces, injected by the libSystem double, and the bugs a reading of
// the Darwin logic found (issue 16, section B): each test runs mach's Darwin logic
// (kernel_libsystem.go) over the double.

// oolMapped counts the out-of-line regions this process has mapped (the emulation's memfd
// mappings).
func oolMapped() int {
	maps, _ := os.ReadFile("/proc/self/maps")
	return bytes.Count(maps, []byte("memfd:machport-ool")) + bytes.Count(maps, []byte("memfd:machport-region"))
}

// empty asserts that nothing is queued on r.
func empty(t *testing.T, r *mach.ReceiveRight, what string) {
	t.Helper()
	var m mach.Message
	err := mach.Receive(ctxTimeout(t, 0), r, &m)
	if err == nil {
		m.Destroy()
	}
	require.ErrorIs(t, err, mach.RcvTimedOut, what)
}

// xnu hands an interrupted send's message back (ipc_kmsg_copyout_pseudo) with the rights it
// made or copied for it; libsyscall's mach_msg resends that buffer as it is. Send must do the
// same: releasing the made rights and making them again fires MACH_NOTIFY_SEND_ONCE at the reply
// port, and can fire an armed no-senders request (issue 16, B.2).
func TestDoubleInterruptedSendResendsWhatCameBack(t *testing.T) {
	mach.UseLibSystemDouble(t)
	checkLeaks(t)
	ctx := ctxTimeout(t, 10*time.Second)
	dest, destSend := newPort(t, mach.PortOptions{QueueLimit: 16})
	reply, _ := newPort(t, mach.PortOptions{})
	notify, _ := newPort(t, mach.PortOptions{})
	watched, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer watched.Close()
	_, err = watched.RequestNoSenders(0, notify)
	require.NoError(t, err)
	// A send right of the caller's keeps the port's senders from reaching zero while the
	// message travels: the emulation fires no-senders when the last send right of an
	// in-process port moves into a message (a bug of its own, outside this test), and what
	// is checked here is that the made right is made once (the make-send count).
	hold, err := watched.MakeSend()
	require.NoError(t, err)
	_, kept := newPort(t, mach.PortOptions{})
	keptRefs, err := mach.Refs(kept.Name(), mach.RightSend)
	require.NoError(t, err)
	mapped := oolMapped()
	data := bytes.Repeat([]byte("interrupted"), 1000)

	libsystemdouble.Inject(libsystemdouble.Fault{Call: libsystemdouble.CallSend, Name: uint32(destSend.Name()),
		Code: abi.MACH_SEND_INTERRUPTED, Count: 2})
	m := &mach.Message{Remote: mach.CopySendOf(destSend), Local: mach.MakeSendOnceOf(reply), ID: 5, Body: []byte("body"),
		Descriptors: []mach.Descriptor{
			&mach.PortDescriptor{Port: mach.MakeSendOf(watched)},
			&mach.PortDescriptor{Port: mach.CopySendOf(kept)},
			&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy},
		}}
	require.NoError(t, mach.Send(ctx, m))
	empty(t, reply, "no send-once notification: the made send-once right was resent, not released")

	in := receive(t, ctx, dest)
	require.Equal(t, int32(5), in.ID)
	require.Equal(t, mach.PortSendOnce, in.Remote.Disposition)
	require.True(t, bytes.Equal(data, in.Descriptors[2].(*mach.OOLDescriptor).Data))
	st, err := watched.Status()
	require.NoError(t, err)
	require.Equal(t, uint32(2), st.MakeSendCount, "hold's, and the message's made once: not released and made again")
	refs, err := mach.Refs(kept.Name(), mach.RightSend)
	require.NoError(t, err)
	require.Equal(t, keptRefs+1, refs, "the caller's reference, and the one the message carries")
	require.NoError(t, in.Destroy())
	require.Equal(t, mach.NotifySendOnce, notification(t, ctx, reply).Kind, "now the reply right is gone")
	require.NoError(t, hold.Close())
	require.Equal(t, mach.NotifyNoSenders, notification(t, ctx, notify).Kind, "and every send right")
	require.Equal(t, mapped, oolMapped(), "every copy the kernel handed back was sent on or unmapped")
}

// A send that still fails after being handed back releases what the kernel made for it, and the
// caller keeps its own rights and memory.
func TestDoubleTimedOutSendReleasesWhatCameBack(t *testing.T) {
	mach.UseLibSystemDouble(t)
	checkLeaks(t)
	ctx := ctxTimeout(t, 10*time.Second)
	_, destSend := newPort(t, mach.PortOptions{})
	_, kept := newPort(t, mach.PortOptions{})
	keptRefs, err := mach.Refs(kept.Name(), mach.RightSend)
	require.NoError(t, err)
	region, err := mach.AllocateRegion(4096)
	require.NoError(t, err)
	defer region.Close()
	copy(region.Bytes(), "mine")
	mapped := oolMapped()
	libsystemdouble.Inject(libsystemdouble.Fault{Call: libsystemdouble.CallSend, Name: uint32(destSend.Name()),
		Code: abi.MACH_SEND_INTERRUPTED})
	libsystemdouble.Inject(libsystemdouble.Fault{Call: libsystemdouble.CallSend, Name: uint32(destSend.Name()),
		Code: abi.MACH_SEND_TIMED_OUT})
	m := &mach.Message{Remote: mach.CopySendOf(destSend), Descriptors: []mach.Descriptor{
		&mach.PortDescriptor{Port: mach.CopySendOf(kept)},
		&mach.OOLDescriptor{Region: region, Deallocate: true, Copy: mach.VirtualCopy},
	}}
	require.ErrorIs(t, mach.Send(ctx, m), mach.SendTimedOut)
	refs, err := mach.Refs(kept.Name(), mach.RightSend)
	require.NoError(t, err)
	require.Equal(t, keptRefs, refs)
	require.Equal(t, "mine", string(region.Bytes()[:4]), "the region came back (perhaps at a new address)")
	require.Equal(t, mapped, oolMapped())
}

// MACH_RCV_INTERRUPTED: a signal ended the wait; Receive waits again, on either path.
func TestDoubleReceiveInterrupted(t *testing.T) {
	mach.UseLibSystemDouble(t)
	checkLeaks(t)
	r, s := newPort(t, mach.PortOptions{})
	for _, cancellable := range []bool{false, true} {
		libsystemdouble.Inject(libsystemdouble.Fault{Call: libsystemdouble.CallReceive, Code: abi.MACH_RCV_INTERRUPTED, Count: 2})
		send(t, context.Background(), s, 3, nil)
		ctx := context.Background()
		if cancellable {
			ctx = ctxTimeout(t, 10*time.Second)
		}
		var m mach.Message
		require.NoError(t, mach.Receive(ctx, r, &m))
		require.Equal(t, int32(3), m.ID)
	}
}

// MACH_RCV_TOO_LARGE with MACH_RCV_LARGE leaves the message queued and says its size; Receive
// grows its buffer and receives it, through the private wake-up set too.
func TestDoubleTooLargeRetry(t *testing.T) {
	mach.UseLibSystemDouble(t)
	checkLeaks(t)
	r, s := newPort(t, mach.PortOptions{})
	for _, cancellable := range []bool{false, true} {
		send(t, context.Background(), s, 4, make([]byte, 9000))
		ctx := context.Background()
		if cancellable {
			ctx = ctxTimeout(t, 10*time.Second)
		}
		var m mach.Message
		require.NoError(t, mach.ReceiveWithOptions(ctx, r, &m, mach.ReceiveOptions{BufferSize: 200}))
		require.Len(t, m.Body, 9000)
	}
}

// KERN_RESOURCE_SHORTAGE from the kernel reaches the caller as that error; a cancellable receive
// that cannot make its wake-up port falls back to waiting in slices.
func TestDoubleResourceShortage(t *testing.T) {
	mach.UseLibSystemDouble(t)
	checkLeaks(t)
	for _, call := range []string{"mach_port_construct", "vm_allocate"} {
		libsystemdouble.Inject(libsystemdouble.Fault{Call: call, Code: abi.KERN_RESOURCE_SHORTAGE})
	}
	_, err := mach.NewPort(mach.PortOptions{})
	require.ErrorIs(t, err, mach.KernResourceShortage)
	_, err = mach.AllocateRegion(4096)
	require.ErrorIs(t, err, mach.KernResourceShortage)

	r, s := newPort(t, mach.PortOptions{})
	// A waker is idle in the pool after the leak check's warm-up; take it away from this
	// receive by arming faults on everything a new one needs.
	busy := make(chan error, 1)
	hold, holdSend := newPort(t, mach.PortOptions{})
	go func() {
		var m mach.Message
		busy <- mach.Receive(ctxTimeout(t, 10*time.Second), hold, &m)
	}()
	waitBlockedCancellable(t, hold)
	libsystemdouble.Inject(libsystemdouble.Fault{Call: "mach_port_allocate", Code: abi.KERN_RESOURCE_SHORTAGE, Count: 100})
	send(t, context.Background(), s, 6, nil)
	var m mach.Message
	require.NoError(t, mach.Receive(ctxTimeout(t, 10*time.Second), r, &m))
	require.Equal(t, int32(6), m.ID)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	require.ErrorIs(t, mach.Receive(ctx, r, &m), context.Canceled, "the fallback still notices cancellation")
	libsystemdouble.Reset()
	send(t, context.Background(), holdSend, 1, nil)
	require.NoError(t, <-busy)
}

// waitBlockedCancellable waits until a cancellable receive on r has put r in its private set.
func waitBlockedCancellable(t *testing.T, r *mach.ReceiveRight) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if mach.WaitingReceives(r.Name()) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the receive did not start waiting")
		}
		time.Sleep(time.Millisecond)
	}
}

// Out-of-line memory the kernel copied physically arrives with deallocate = 0, and
// mach_msg_destroy leaves such memory mapped: a message Receive rejects or cannot decode must
// still unmap every region it holds (issue 16, B.6).
func TestDoublePhysicalCopyUnmappedOnReject(t *testing.T) {
	mach.UseLibSystemDouble(t)
	checkLeaks(t)
	ctx := ctxTimeout(t, 10*time.Second)
	r, s := newPort(t, mach.PortOptions{})
	data := bytes.Repeat([]byte("p"), 20000)
	sendOOL := func() {
		require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(s), ID: 8,
			Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy}}}))
	}

	mapped := oolMapped()
	sendOOL()
	libsystemdouble.PhysicalCopies(1)
	var m mach.Message
	require.NoError(t, mach.Receive(ctx, r, &m))
	d := m.Descriptors[0].(*mach.OOLDescriptor)
	require.False(t, d.Deallocate, "a physical copy arrives with deallocate = 0")
	require.Equal(t, mach.PhysicalCopy, d.Copy)
	require.True(t, bytes.Equal(data, d.Data))
	require.NoError(t, m.Destroy())
	require.Equal(t, mapped, oolMapped(), "Destroy unmaps it")

	sendOOL()
	libsystemdouble.PhysicalCopies(1)
	err := mach.ReceiveWithOptions(ctx, r, &m, mach.ReceiveOptions{Accept: func(*mach.Message) error { return os.ErrInvalid }})
	require.ErrorIs(t, err, mach.ErrRejected)
	require.Equal(t, mapped, oolMapped(), "a rejected message's physical copy is unmapped too")
}

// A cancellable receive records itself before it puts the port in its private set: a port
// closed or moved between the two wakes it (issue 16, B.1).
func TestDoubleCancellableReceiveSeesChangeInTheWindow(t *testing.T) {
	mach.UseLibSystemDouble(t)
	checkLeaks(t)
	t.Run("closed", func(t *testing.T) {
		r, err := mach.NewPort(mach.PortOptions{})
		require.NoError(t, err)
		defer r.Close()
		libsystemdouble.After("mach_port_insert_member", uint32(r.Name()), func() { r.Close() })
		var m mach.Message
		err = mach.Receive(ctxTimeout(t, 10*time.Second), r, &m)
		require.ErrorIs(t, err, mach.RcvPortChanged)
	})
	t.Run("moved to a set", func(t *testing.T) {
		set, err := mach.NewPortSet()
		require.NoError(t, err)
		defer set.Close()
		r, s := newPort(t, mach.PortOptions{})
		libsystemdouble.After("mach_port_insert_member", uint32(r.Name()), func() {
			require.NoError(t, mach.MoveMember(r, set))
			send(t, context.Background(), s, 7, nil)
		})
		var m mach.Message
		require.NoError(t, mach.Receive(ctxTimeout(t, 10*time.Second), r, &m))
		require.Equal(t, int32(7), m.ID)
	})
}

// A receive right that a failed send hands back keeps its port-set memberships, and a receive
// waiting on it is woken to wait on it again (issue 16, B.7).
func TestDoubleHandedBackReceiveRightKeepsItsSets(t *testing.T) {
	mach.UseLibSystemDouble(t)
	checkLeaks(t)
	ctx := ctxTimeout(t, 10*time.Second)
	set, err := mach.NewPortSet()
	require.NoError(t, err)
	defer set.Close()
	_, carrierSend := newPort(t, mach.PortOptions{})
	moving, movingSend := newPort(t, mach.PortOptions{})
	require.NoError(t, set.Add(moving))

	got := make(chan error, 1)
	go func() {
		var m mach.Message
		err := mach.Receive(ctx, moving, &m)
		if err == nil && m.ID != 1 {
			err = os.ErrInvalid
		}
		got <- err
	}()
	waitBlockedCancellable(t, moving)
	libsystemdouble.Inject(libsystemdouble.Fault{Call: libsystemdouble.CallSend, Name: uint32(carrierSend.Name()),
		Code: abi.MACH_SEND_TIMED_OUT})
	err = mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(carrierSend),
		Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MoveReceiveOf(moving)}}})
	require.ErrorIs(t, err, mach.SendTimedOut)
	st, err := moving.Status()
	require.NoError(t, err, "the receive right is still the caller's")
	require.True(t, st.InPortSet, "and still in its set")
	send(t, ctx, movingSend, 1, nil)
	require.NoError(t, <-got, "the waiting receive got the message")
	send(t, ctx, movingSend, 2, nil)
	require.Equal(t, int32(2), receive(t, ctx, set).ID)
}

// The private wake-up set of a cancellable receive does not show: Status reports the caller's
// sets only, and MoveMember(r, nil) on a port in no set of the caller's gives KERN_NOT_IN_SET
// (issue 16, B.8).
func TestDoublePrivateSetsHidden(t *testing.T) {
	mach.UseLibSystemDouble(t)
	checkLeaks(t)
	ctx := ctxTimeout(t, 10*time.Second)
	r, s := newPort(t, mach.PortOptions{})
	set, err := mach.NewPortSet()
	require.NoError(t, err)
	defer set.Close()
	got := make(chan int32, 2)
	recv := func() {
		var m mach.Message
		if mach.Receive(ctx, r, &m) == nil {
			got <- m.ID
		}
	}
	go recv()
	waitBlockedCancellable(t, r)
	st, err := r.Status()
	require.NoError(t, err)
	require.False(t, st.InPortSet)
	require.ErrorIs(t, mach.MoveMember(r, nil), mach.KernNotInSet)
	send(t, ctx, s, 1, nil)
	require.Equal(t, int32(1), <-got)

	require.NoError(t, set.Add(r))
	go recv()
	waitBlockedCancellable(t, r)
	st, err = r.Status()
	require.NoError(t, err)
	require.True(t, st.InPortSet)
	require.NoError(t, mach.MoveMember(r, nil))
	st, err = r.Status()
	require.NoError(t, err)
	require.False(t, st.InPortSet)
	send(t, ctx, s, 2, nil)
	require.Equal(t, int32(2), <-got, "the receive still waits on the port")
}
