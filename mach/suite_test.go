package mach_test

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

func TestInlineRoundTrip(t *testing.T) {
	checkLeaks(t)
	r, s := newPort(t, mach.PortOptions{QueueLimit: 16})
	for _, size := range []int{0, 1, 4, 63, 4000, 4001, 16 << 10, 16<<10 + 1, 1 << 20} {
		body := bytes.Repeat([]byte{byte(size)}, size)
		ctx := ctxTimeout(t, 5*time.Second)
		require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(s), ID: int32(size) - 7, Body: body}))
		var m mach.Message
		require.NoError(t, mach.Receive(ctx, r, &m))
		require.Equal(t, int32(size)-7, m.ID)
		require.Equal(t, mach.PortSend, m.Local.Disposition, "the message came through a send right")
		require.Equal(t, r.Name(), m.Local.Name)
		require.True(t, m.Remote.IsNull())
		require.False(t, m.Complex)
		require.Len(t, m.Body, (size+3)&^3, "the body arrives padded to 4 bytes")
		require.True(t, bytes.Equal(body, m.Body[:size]))
		require.Equal(t, os.Getpid(), m.Trailer.Audit.PID())
		require.Equal(t, uint32(os.Getuid()), m.Trailer.Audit.EUID())
		require.NoError(t, m.Destroy())
	}
}

func TestDispositions(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	server, serverSend := newPort(t, mach.PortOptions{})
	client, _ := newPort(t, mach.PortOptions{})

	t.Run("MAKE_SEND_ONCE reply works exactly once", func(t *testing.T) {
		req := &mach.Message{Remote: mach.CopySendOf(serverSend), Local: mach.MakeSendOnceOf(client), ID: 1}
		require.NoError(t, mach.Send(ctx, req))
		in := receive(t, ctx, server)
		require.Equal(t, mach.PortSendOnce, in.Remote.Disposition)
		reply, ok := in.TakeRemote().(*mach.SendOnceRight)
		require.True(t, ok)
		replyName := reply.Name()
		ty, err := mach.TypeOf(replyName)
		require.NoError(t, err)
		require.True(t, ty.Has(mach.TypeSendOnce))

		require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOnceOf(reply), ID: 2}))
		out := receive(t, ctx, client)
		require.Equal(t, int32(2), out.ID)
		require.Equal(t, mach.PortSendOnce, out.Local.Disposition)

		err = mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOnceOf(reply), ID: 3})
		require.ErrorIs(t, err, mach.ErrClosed, "the typed right is gone")
		err = mach.Send(ctx, &mach.Message{Remote: mach.Port{Name: replyName, Disposition: mach.MoveSendOnce}, ID: 3})
		require.ErrorIs(t, err, mach.SendInvalidDest, "and so is the name")
		require.NoError(t, reply.Close())
	})

	t.Run("COPY_SEND keeps working on both sides", func(t *testing.T) {
		other, otherSend := newPort(t, mach.PortOptions{})
		before, err := mach.Refs(otherSend.Name(), mach.RightSend)
		require.NoError(t, err)
		m := &mach.Message{Remote: mach.CopySendOf(serverSend), ID: 4,
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.CopySendOf(otherSend)}}}
		require.NoError(t, mach.Send(ctx, m))
		in := receive(t, ctx, server)
		got, err := in.TakePort(0)
		require.NoError(t, err)
		copied := got.(*mach.SendRight)
		defer copied.Close()
		require.Equal(t, otherSend.Name(), copied.Name(), "send rights to one port share a name in a space")
		after, err := mach.Refs(otherSend.Name(), mach.RightSend)
		require.NoError(t, err)
		require.Equal(t, before+1, after)
		send(t, ctx, otherSend, 5, nil)
		send(t, ctx, copied, 6, nil)
		require.Equal(t, int32(5), receive(t, ctx, other).ID)
		require.Equal(t, int32(6), receive(t, ctx, other).ID)
	})

	t.Run("MOVE_SEND takes the right from the sender", func(t *testing.T) {
		other, otherSend := newPort(t, mach.PortOptions{})
		extra, err := otherSend.Copy()
		require.NoError(t, err)
		refs, _ := mach.Refs(other.Name(), mach.RightSend)
		m := &mach.Message{Remote: mach.CopySendOf(serverSend), ID: 7,
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MoveSendOf(extra)}}}
		require.NoError(t, mach.Send(ctx, m))
		require.ErrorIs(t, mach.Send(ctx, m), mach.ErrClosed)
		in := receive(t, ctx, server)
		moved, err := in.TakePort(0)
		require.NoError(t, err)
		after, _ := mach.Refs(other.Name(), mach.RightSend)
		require.Equal(t, refs, after, "moved out and back in: the same count")
		require.NoError(t, moved.Close())
		after, _ = mach.Refs(other.Name(), mach.RightSend)
		require.Equal(t, refs-1, after)

		// Moving the last send reference leaves the name without a send right: using it as one
		// fails as on Darwin.
		last, err := other.MakeSend()
		require.NoError(t, err)
		require.NoError(t, otherSend.Close())
		require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(serverSend), ID: 12,
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MoveSendOf(last)}}}))
		ty, err := mach.TypeOf(other.Name())
		require.NoError(t, err)
		require.False(t, ty.Has(mach.TypeSend), "%v", ty)
		require.ErrorIs(t, mach.ModRefs(other.Name(), mach.RightSend, -1), mach.KernInvalidRight)
		err = mach.Send(ctx, &mach.Message{Remote: mach.Port{Name: other.Name(), Disposition: mach.CopySend}})
		require.ErrorIs(t, err, mach.SendInvalidDest)
		in = receive(t, ctx, server)
		back, err := in.TakePort(0)
		require.NoError(t, err)
		require.NoError(t, back.Close())
	})

	t.Run("MAKE_SEND gives the receiver a new send right", func(t *testing.T) {
		other, err := mach.NewPort(mach.PortOptions{})
		require.NoError(t, err)
		defer other.Close()
		m := &mach.Message{Remote: mach.CopySendOf(serverSend), ID: 8,
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MakeSendOf(other)}}}
		require.NoError(t, mach.Send(ctx, m))
		in := receive(t, ctx, server)
		made, err := in.TakePort(0)
		require.NoError(t, err)
		defer made.Close()
		st, err := other.Status()
		require.NoError(t, err)
		require.Equal(t, uint32(1), st.MakeSendCount)
		send(t, ctx, made.(*mach.SendRight), 9, nil)
		require.Equal(t, int32(9), receive(t, ctx, other).ID)
	})

	t.Run("MOVE_RECEIVE within a process", func(t *testing.T) {
		moving, err := mach.NewPort(mach.PortOptions{})
		require.NoError(t, err)
		movingSend, err := moving.MakeSend()
		require.NoError(t, err)
		defer movingSend.Close()
		m := &mach.Message{Remote: mach.CopySendOf(serverSend), ID: 10,
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MoveReceiveOf(moving)}}}
		require.NoError(t, mach.Send(ctx, m))
		require.NoError(t, moving.Close(), "moved: Close does nothing")
		in := receive(t, ctx, server)
		require.Equal(t, mach.PortReceive, in.Descriptors[0].(*mach.PortDescriptor).Port.Disposition)
		got, err := in.TakePort(0)
		require.NoError(t, err)
		recv := got.(*mach.ReceiveRight)
		defer recv.Close()
		send(t, ctx, movingSend, 11, []byte("still here"))
		require.Equal(t, int32(11), receive(t, ctx, recv).ID)
	})
}

func TestOutOfLine(t *testing.T) {
	checkLeaks(t)
	r, s := newPort(t, mach.PortOptions{})
	sizes := []int{1, 4001, 64 << 20}
	if !testing.Short() {
		sizes = append(sizes, 256<<20)
	}
	for _, size := range sizes {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + i>>11)
		}
		ctx := ctxTimeout(t, 30*time.Second)
		m := &mach.Message{Remote: mach.CopySendOf(s), ID: 1,
			Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy}}}
		require.NoError(t, mach.Send(ctx, m))
		var in mach.Message
		require.NoError(t, mach.Receive(ctx, r, &in))
		require.Len(t, in.Descriptors, 1)
		ool := in.Descriptors[0].(*mach.OOLDescriptor)
		require.Equal(t, uint32(size), ool.Size)
		require.True(t, ool.Deallocate, "a virtual copy arrives with deallocate set, as on Darwin")
		require.True(t, bytes.Equal(data, ool.Data), "%d bytes arrive identical", size)
		ool.Data[0] ^= 0xff // the receiver's copy is its own
		require.NotEqual(t, data[0], ool.Data[0])
		require.NoError(t, in.Destroy())
	}

	t.Run("deallocate hands a region to the kernel", func(t *testing.T) {
		region, err := mach.AllocateRegion(8192)
		require.NoError(t, err)
		copy(region.Bytes(), "region data")
		ctx := ctxTimeout(t, 5*time.Second)
		m := &mach.Message{Remote: mach.CopySendOf(s), ID: 2,
			Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Region: region, Deallocate: true, Copy: mach.VirtualCopy}}}
		require.NoError(t, mach.Send(ctx, m))
		require.Nil(t, region.Bytes(), "the region is gone from the sender")
		require.NoError(t, region.Close())
		in := receive(t, ctx, r)
		got, err := in.TakeRegion(0)
		require.NoError(t, err)
		require.Equal(t, "region data", string(got.Bytes()[:11]))
		require.NoError(t, got.Close())
	})

	t.Run("a failed send leaves the region with the sender", func(t *testing.T) {
		dead, err := mach.NewPort(mach.PortOptions{})
		require.NoError(t, err)
		deadSend, err := dead.MakeSend()
		require.NoError(t, err)
		defer deadSend.Close()
		require.NoError(t, dead.Close())
		region, err := mach.AllocateRegion(4096)
		require.NoError(t, err)
		defer region.Close()
		m := &mach.Message{Remote: mach.CopySendOf(deadSend),
			Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Region: region, Deallocate: true, Copy: mach.VirtualCopy}}}
		require.ErrorIs(t, mach.Send(ctxTimeout(t, time.Second), m), mach.SendInvalidDest)
		copy(region.Bytes(), "still mine") // mapped and writable
		require.Equal(t, "still mine", string(region.Bytes()[:10]))
	})

	t.Run("Go memory cannot be deallocated", func(t *testing.T) {
		m := &mach.Message{Remote: mach.CopySendOf(s), Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Data: []byte("x"), Deallocate: true}}}
		require.ErrorIs(t, mach.Send(context.Background(), m), mach.ErrInvalidMessage)
	})
}

func TestDeadDestination(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	notify, _ := newPort(t, mach.PortOptions{})
	r, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	s, err := r.MakeSend()
	require.NoError(t, err)
	peer, err := s.Copy()
	require.NoError(t, err)
	defer peer.Close()
	defer s.Close()

	prev, err := peer.RequestDeadName(notify)
	require.NoError(t, err)
	require.Nil(t, prev)
	require.NoError(t, r.Close())

	n := notification(t, ctx, notify)
	require.Equal(t, mach.NotifyDeadName, n.Kind)
	require.Equal(t, s.Name(), n.Name)
	require.NoError(t, n.CloseDeadName())

	err = mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(s), ID: 1})
	require.ErrorIs(t, err, mach.SendInvalidDest)
	ty, err := mach.TypeOf(s.Name())
	require.NoError(t, err)
	require.True(t, ty.Has(mach.TypeDeadName), "the send right became a dead name: %v", ty)
}

func TestNoSenders(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	notify, _ := newPort(t, mach.PortOptions{})
	r, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer r.Close()
	s, err := r.MakeSend()
	require.NoError(t, err)
	_, err = r.RequestNoSenders(0, notify)
	require.NoError(t, err)

	// A copy that travels in a message keeps the port alive until it is released.
	carrier, carrierSend := newPort(t, mach.PortOptions{})
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(carrierSend),
		Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.CopySendOf(s)}}}))
	require.NoError(t, s.Close())
	quiet, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	var none mach.Message
	require.ErrorIs(t, mach.Receive(quiet, notify, &none), os.ErrDeadlineExceeded, "a send right is still in flight")

	in := receive(t, ctx, carrier)
	require.NoError(t, in.Destroy())
	n := notification(t, ctx, notify)
	require.Equal(t, mach.NotifyNoSenders, n.Kind)
	require.Equal(t, uint32(1), n.MakeSendCount)
}

func TestSendOnceNotification(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	r, _ := newPort(t, mach.PortOptions{})
	so, err := r.MakeSendOnce()
	require.NoError(t, err)
	require.NoError(t, so.Close())
	n := notification(t, ctx, r)
	require.Equal(t, mach.NotifySendOnce, n.Kind)
}

func TestTimeouts(t *testing.T) {
	checkLeaks(t)
	r, s := newPort(t, mach.PortOptions{QueueLimit: 1})

	ctx := ctxTimeout(t, 20*time.Millisecond)
	var m mach.Message
	err := mach.Receive(ctx, r, &m)
	require.ErrorIs(t, err, mach.RcvTimedOut)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)

	send(t, context.Background(), s, 1, nil)
	ctx = ctxTimeout(t, 50*time.Millisecond)
	err = mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(s), ID: 2})
	require.ErrorIs(t, err, mach.SendTimedOut, "the queue holds one message")
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.Equal(t, int32(1), receive(t, context.Background(), r).ID)
	send(t, ctxTimeout(t, time.Second), s, 3, nil)
	require.Equal(t, int32(3), receive(t, context.Background(), r).ID)

	cctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var m mach.Message
		done <- mach.Receive(cctx, r, &m)
	}()
	time.Sleep(100 * time.Millisecond) // let the receive block
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.Canceled)
		// Promptly, not at the fallback: a receive that missed its wake-up would look at its
		// context only at the emulation's periodic check (2 s). The bound is that far from a
		// prompt wake-up because a loaded CI machine delays one by 150 ms at times.
		require.Less(t, time.Since(start), time.Second, "cancellation unblocks the receive promptly")
	case <-time.After(2 * time.Second):
		t.Fatal("the receive did not wake up")
	}
}

func TestTooLarge(t *testing.T) {
	checkLeaks(t)
	r, s := newPort(t, mach.PortOptions{})
	body := make([]byte, 10000)
	ctx := ctxTimeout(t, 5*time.Second)

	send(t, ctx, s, 1, body)
	var m mach.Message
	err := mach.ReceiveWithOptions(ctx, r, &m, mach.ReceiveOptions{MaxSize: 5000})
	require.ErrorIs(t, err, mach.RcvTooLarge)
	require.ErrorIs(t, err, mach.ErrMessageTooLarge)
	require.NoError(t, mach.ReceiveWithOptions(ctx, r, &m, mach.ReceiveOptions{BufferSize: 100}), "with MACH_RCV_LARGE the message stayed queued")
	require.Len(t, m.Body, 10000)

	send(t, ctx, s, 2, body)
	send(t, ctx, s, 3, nil)
	err = mach.ReceiveWithOptions(ctx, r, &m, mach.ReceiveOptions{BufferSize: 1000, Exact: true})
	require.ErrorIs(t, err, mach.RcvTooLarge)
	require.NoError(t, mach.Receive(ctx, r, &m))
	require.Equal(t, int32(3), m.ID, "without MACH_RCV_LARGE the large message was destroyed")
}

func TestPortSet(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	set, err := mach.NewPortSet()
	require.NoError(t, err)
	defer set.Close()
	a, as := newPort(t, mach.PortOptions{})
	b, bs := newPort(t, mach.PortOptions{})
	require.NoError(t, set.Add(a))
	require.NoError(t, set.Add(b))
	require.ErrorIs(t, set.Add(a), mach.KernAlreadyInSet)
	send(t, ctx, bs, 2, nil)
	send(t, ctx, as, 1, nil)
	got := map[mach.Name]int32{}
	for i := 0; i < 2; i++ {
		m := receive(t, ctx, set)
		got[m.Local.Name] = m.ID
	}
	require.Equal(t, map[mach.Name]int32{a.Name(): 1, b.Name(): 2}, got)
	st, err := a.Status()
	require.NoError(t, err)
	require.True(t, st.InPortSet)

	require.NoError(t, set.Remove(a))
	send(t, ctx, as, 3, nil)
	quiet := ctxTimeout(t, 50*time.Millisecond)
	var m mach.Message
	require.ErrorIs(t, mach.Receive(quiet, set, &m), mach.RcvTimedOut)
	require.Equal(t, int32(3), receive(t, ctx, a).ID)
}

func TestUserReferenceErrors(t *testing.T) {
	checkLeaks(t)
	r, s := newPort(t, mach.PortOptions{})
	cases := []struct {
		name  string
		err   error
		right mach.PortRight
		delta int32
		on    mach.Name
	}{
		{"unknown name", mach.KernInvalidName, mach.RightSend, -1, 0x7fff0103},
		{"wrong right", mach.KernInvalidRight, mach.RightSendOnce, -1, s.Name()},
		{"below zero", mach.KernInvalidValue, mach.RightSend, -5, s.Name()},
		{"receive by two", mach.KernInvalidValue, mach.RightReceive, -2, r.Name()},
		{"no such right kind", mach.KernInvalidValue, mach.PortRight(9), -1, s.Name()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.ErrorIs(t, mach.ModRefs(c.on, c.right, c.delta), c.err)
		})
	}
	_, err := mach.TypeOf(0x7fff0103)
	require.ErrorIs(t, err, mach.KernInvalidName)
	// A name beyond any table the task has: r.Name()+0x100 could be a live neighbour on xnu.
	require.ErrorIs(t, mach.Deallocate(0x7fff0103), mach.KernInvalidName)

	// xnu pegs user references at MACH_PORT_UREFS_MAX (65535) instead of failing with
	// KERN_UREFS_OVERFLOW, and a pegged count changes only by a delta that removes it all
	// (ipc_right_delta); the emulation does the same.
	require.NoError(t, mach.ModRefs(s.Name(), mach.RightSend, 65000))
	require.NoError(t, mach.ModRefs(s.Name(), mach.RightSend, 1000))
	refs, err := mach.Refs(s.Name(), mach.RightSend)
	require.NoError(t, err)
	require.Equal(t, uint32(65535), refs)
	pegged := func(how string) {
		t.Helper()
		refs, err := mach.Refs(s.Name(), mach.RightSend)
		require.NoError(t, err)
		require.Equal(t, uint32(65535), refs, "%s leaves a pegged count as it is", how)
	}
	require.NoError(t, mach.ModRefs(s.Name(), mach.RightSend, -65534), "a partial release of a pegged count succeeds")
	pegged("mod_refs -65534")
	require.NoError(t, mach.Deallocate(s.Name()))
	pegged("deallocate")
	ctx := ctxTimeout(t, 5*time.Second)
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(s), ID: 1,
		Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.Port{Name: s.Name(), Disposition: mach.MoveSend}}}}))
	pegged("moving a send right into a message")
	var m mach.Message
	require.NoError(t, mach.Receive(ctx, r, &m))
	require.NoError(t, m.Destroy()) // the right comes back to the same name, and goes again
	pegged("receiving and destroying it")
	require.NoError(t, mach.ModRefs(s.Name(), mach.RightSend, -65535))
	refs, err = mach.Refs(s.Name(), mach.RightSend)
	require.NoError(t, err)
	require.Zero(t, refs, "removing all of them at once drops the send right")
	// The receive right remains; give the name its send right back for s.Close.
	require.NoError(t, mach.InsertRight(r.Name(), r.Name(), mach.MakeSend))
}

// Ten thousand messages carrying rights and out-of-line memory, with replies through send-once
// rights: the fd and port-name counts are the same afterwards.
func TestNoLeaksUnderLoad(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 60*time.Second)
	server, serverSend := newPort(t, mach.PortOptions{QueueLimit: 16})
	client, _ := newPort(t, mach.PortOptions{})
	_, extraSend := newPort(t, mach.PortOptions{})
	data := bytes.Repeat([]byte("ool"), 100)
	var in, out mach.Message
	n := 10000
	if testing.Short() {
		n = 1000
	}
	for i := 0; i < n; i++ {
		req := &mach.Message{Remote: mach.CopySendOf(serverSend), Local: mach.MakeSendOnceOf(client), ID: int32(i),
			Descriptors: []mach.Descriptor{
				&mach.PortDescriptor{Port: mach.CopySendOf(extraSend)},
				&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy},
			}}
		require.NoError(t, mach.Send(ctx, req))
		require.NoError(t, mach.Receive(ctx, server, &in))
		reply := in.TakeRemote().(*mach.SendOnceRight)
		region, err := in.TakeRegion(1)
		require.NoError(t, err)
		require.NoError(t, in.Destroy())
		resp := &mach.Message{Remote: mach.MoveSendOnceOf(reply), ID: int32(i),
			Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Region: region, Deallocate: true, Copy: mach.VirtualCopy}}}
		require.NoError(t, mach.Send(ctx, resp))
		require.NoError(t, mach.Receive(ctx, client, &out))
		require.Equal(t, int32(i), out.ID)
		require.True(t, bytes.Equal(data, out.Descriptors[0].(*mach.OOLDescriptor).Data))
		require.NoError(t, out.Destroy())
	}
}

func TestPortOptions(t *testing.T) {
	checkLeaks(t)
	r, err := mach.NewPort(mach.PortOptions{QueueLimit: 3, Guard: 0xfeed})
	require.NoError(t, err)
	st, err := r.Status()
	require.NoError(t, err)
	require.Equal(t, uint32(3), st.QueueLimit)
	require.NoError(t, r.SetQueueLimit(7))
	st, _ = r.Status()
	require.Equal(t, uint32(7), st.QueueLimit)
	name := r.Name()
	require.NoError(t, r.Close(), "a guarded receive right is destroyed with its guard")
	_, err = mach.TypeOf(name)
	require.ErrorIs(t, err, mach.KernInvalidName)

	r, s, err := mach.NewPortWithSendRight(mach.PortOptions{})
	require.NoError(t, err)
	require.Equal(t, r.Name(), s.Name())
	ty, err := mach.TypeOf(r.Name())
	require.NoError(t, err)
	require.True(t, ty.Has(mach.TypeReceive|mach.TypeSend), "%v", ty)
	require.NoError(t, s.Close())
	require.NoError(t, r.Close())
}

// A no-senders notification comes after the messages the last senders queued: in Mach a queued
// message is sent before the right is released.
func TestNoSendersAfterQueuedMessages(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	r, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer r.Close()
	s, err := r.MakeSend()
	require.NoError(t, err)
	_, err = r.RequestNoSenders(0, r)
	require.NoError(t, err)
	send(t, ctx, s, 1234, []byte("last words"))
	require.NoError(t, s.Close())
	require.Equal(t, int32(1234), receive(t, ctx, r).ID)
	n := notification(t, ctx, r)
	require.Equal(t, mach.NotifyNoSenders, n.Kind)
}

// A sender blocked on a full queue is released when the port dies, never left hanging: xnu
// treats that as a delivery (the message is destroyed) and the send returns success.
func TestBlockedSenderReleasedByPortDeath(t *testing.T) {
	checkLeaks(t)
	r, err := mach.NewPort(mach.PortOptions{QueueLimit: 1})
	require.NoError(t, err)
	s, err := r.MakeSend()
	require.NoError(t, err)
	defer s.Close()
	send(t, context.Background(), s, 1, nil)
	done := make(chan error, 1)
	go func() { done <- mach.Send(context.Background(), &mach.Message{Remote: mach.CopySendOf(s), ID: 2}) }()
	select {
	case err := <-done:
		t.Fatalf("the send did not block: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	require.NoError(t, r.Close())
	select {
	case err := <-done:
		// xnu: success when the sender was already waiting, MACH_SEND_INVALID_DEST when the
		// port died before it got there (a scheduler can delay the goroutine that long).
		if err != nil {
			require.ErrorIs(t, err, mach.SendInvalidDest)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the blocked send was not released")
	}
	err = mach.Send(context.Background(), &mach.Message{Remote: mach.CopySendOf(s), ID: 3})
	require.ErrorIs(t, err, mach.SendInvalidDest)
}

// A receive right that moves leaves its port sets, as in Mach.
func TestMovedReceiveLeavesPortSet(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	set, err := mach.NewPortSet()
	require.NoError(t, err)
	defer set.Close()
	carrier, carrierSend := newPort(t, mach.PortOptions{})
	a, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	as, err := a.MakeSend()
	require.NoError(t, err)
	defer as.Close()
	require.NoError(t, set.Add(a))
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(carrierSend),
		Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MoveReceiveOf(a)}}}))
	in := receive(t, ctx, carrier)
	got, err := in.TakePort(0)
	require.NoError(t, err)
	moved := got.(*mach.ReceiveRight)
	defer moved.Close()
	st, err := moved.Status()
	require.NoError(t, err)
	require.False(t, st.InPortSet)
	send(t, ctx, as, 9, nil)
	var m mach.Message
	require.ErrorIs(t, mach.Receive(ctxTimeout(t, 50*time.Millisecond), set, &m), mach.RcvTimedOut)
	require.Equal(t, int32(9), receive(t, ctx, moved).ID)
}

// xnu allows one port-destroyed request per port and refuses a second with KERN_FAILURE
// (ipc_policy.c, "Allow only one registration of this notification"); the first one stays armed
// and no previous right is ever returned for it.
func TestSecondPortDestroyedRequest(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 5*time.Second)
	first, _ := newPort(t, mach.PortOptions{})
	second, _ := newPort(t, mach.PortOptions{})
	r, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	prev, err := r.RequestPortDestroyed(first)
	require.NoError(t, err)
	require.Nil(t, prev)
	prev, err = r.RequestPortDestroyed(second)
	require.ErrorIs(t, err, mach.KernFailure)
	require.Nil(t, prev)
	st, err := r.Status()
	require.NoError(t, err)
	require.True(t, st.PortDestroyedRequested)

	require.NoError(t, r.Close())
	n := notification(t, ctx, first)
	require.Equal(t, mach.NotifyPortDestroyed, n.Kind, "the first request is the one armed")
	require.NoError(t, n.Right.Close())
	var m mach.Message
	require.ErrorIs(t, mach.Receive(ctxTimeout(t, 0), second, &m), mach.RcvTimedOut)
}
