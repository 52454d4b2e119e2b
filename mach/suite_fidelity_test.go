package mach_test

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// Behaviour held against xnu's sources and darwintests (issue 17, "Mach differences to fix").
// Every test here runs over the emulation, through the libSystem double and on macOS.

// mach_port_mod_refs refuses a right of MACH_PORT_RIGHT_NUMBER and above with KERN_INVALID_VALUE,
// but MACH_PORT_RIGHT_LABELH (5) gets as far as ipc_right_delta, which answers
// KERN_INVALID_RIGHT (osfmk/ipc/ipc_right.c, ipc_right_delta; tests/mach_port_mod_refs.c).
func TestFidelityModRefsRightNumbers(t *testing.T) {
	checkLeaks(t)
	r, _ := newPort(t, mach.PortOptions{})
	for _, tc := range []struct {
		right mach.PortRight
		want  mach.KernReturn
	}{
		{5, mach.KernInvalidRight}, // MACH_PORT_RIGHT_LABELH
		{6, mach.KernInvalidValue}, // MACH_PORT_RIGHT_NUMBER
		{7, mach.KernInvalidValue},
	} {
		for _, delta := range []int32{0, 1, -1} {
			err := mach.ModRefs(r.Name(), tc.right, delta)
			require.ErrorIs(t, err, tc.want, "right %d, delta %d", tc.right, delta)
		}
	}
}

// mach_port_mod_refs of SEND or SEND_ONCE on MACH_PORT_NULL or MACH_PORT_DEAD succeeds and does
// nothing; other rights on those names are KERN_INVALID_NAME (osfmk/ipc/mach_port.c,
// mach_port_mod_refs: !MACH_PORT_VALID(name)).
func TestFidelityModRefsInvalidNames(t *testing.T) {
	checkLeaks(t)
	for _, name := range []mach.Name{mach.NameNull, mach.NameDead} {
		for _, tc := range []struct {
			right mach.PortRight
			want  error
		}{
			{mach.RightSend, nil},
			{mach.RightSendOnce, nil},
			{mach.RightReceive, mach.KernInvalidName},
			{mach.RightPortSet, mach.KernInvalidName},
			{mach.RightDeadName, mach.KernInvalidName},
		} {
			for _, delta := range []int32{-1, 0, 1} {
				err := mach.ModRefs(name, tc.right, delta)
				if tc.want == nil {
					require.NoError(t, err, "name %#x right %v delta %d", name, tc.right, delta)
				} else {
					require.ErrorIs(t, err, tc.want, "name %#x right %v delta %d", name, tc.right, delta)
				}
			}
		}
	}
}

// mach_port_insert_right never renames a port within a space: a port already named there,
// inserted under another name, is KERN_RIGHT_EXISTS even when that name denotes another port
// (ipc_object_copyout_name, ipc_right_reverse). Before that, current xnu's ipc_entry_alloc_name
// (osfmk/ipc/ipc_entry.c) refuses a name whose low two bits (generation bits) are not 0b11 with
// KERN_INVALID_VALUE, checked before the index, and then a name of index 0, or of an index in use
// under another generation, with KERN_FAILURE. tests/mach_port_insert_right.c of current xnu
// (apple-oss-distributions) asserts KERN_INVALID_VALUE for name 122; the older darwin-xnu test
// expected KERN_FAILURE for port+1, which current kernels no longer answer.
func TestFidelityInsertRightUnderAnotherName(t *testing.T) {
	checkLeaks(t)
	a, _ := newPort(t, mach.PortOptions{})
	b, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer b.Close()
	require.Equal(t, mach.Name(3), b.Name()&3, "names the kernel makes end in 0b11")
	for _, tc := range []struct {
		what string
		name mach.Name
		want mach.KernReturn
	}{
		{"another port's name", a.Name(), mach.KernRightExists},
		{"122: invalid generation bits (xnu's own test)", 122, mach.KernInvalidValue},
		{"b+1: invalid generation bits, index in use", b.Name() + 1, mach.KernInvalidValue},
		{"b+2: invalid generation bits, index in use", b.Name() + 2, mach.KernInvalidValue},
		{"123: valid generation, index 0", 123, mach.KernFailure},
		{"b+4: valid generation, index in use under another", b.Name() + 4, mach.KernFailure},
	} {
		t.Run(tc.what, func(t *testing.T) {
			err := mach.InsertRight(tc.name, b.Name(), mach.MakeSend)
			require.ErrorIs(t, err, tc.want, "name %#x", uint32(tc.name))
		})
	}
	ty, err := mach.TypeOf(b.Name())
	require.NoError(t, err)
	require.Equal(t, mach.TypeReceive, ty, "no send right was left behind")
	ty, err = mach.TypeOf(a.Name())
	require.NoError(t, err)
	require.Equal(t, mach.TypeReceive|mach.TypeSend, ty, "the other name is untouched")
}

// mach_port_deallocate of a port set destroys it (ipc_right_dealloc, MACH_PORT_TYPE_PORT_SET;
// tests/mach_port_deallocate_21692215.c), and its members leave it.
func TestFidelityDeallocatePortSet(t *testing.T) {
	checkLeaks(t)
	r, _ := newPort(t, mach.PortOptions{})
	set, err := mach.NewPortSet()
	require.NoError(t, err)
	require.NoError(t, set.Add(r))
	require.NoError(t, mach.Deallocate(set.Name()))
	_, err = mach.TypeOf(set.Name())
	require.ErrorIs(t, err, mach.KernInvalidName, "the set is gone")
	st, err := r.Status()
	require.NoError(t, err)
	require.False(t, st.InPortSet, "its member left it")
}

// Releasing a name whose dead-name request is armed sends MACH_NOTIFY_PORT_DELETED to the
// request's port, by deallocate or by a delta to zero (ipc_right_dealloc and ipc_right_delta:
// ipc_right_request_cancel, then ipc_notify_port_deleted). The armed request holds a send-once
// right to the notify port, which its status counts (mps_sorights) until the notification that
// used it is received (ipc_object_copyout_dest).
func TestFidelityReleaseSendsPortDeleted(t *testing.T) {
	sendOnce := func(t *testing.T, target *mach.ReceiveRight) mach.Name {
		so, err := target.MakeSendOnce()
		require.NoError(t, err)
		return so.Name()
	}
	// sendOnly makes a send right whose name holds nothing else: the receive right leaves in a
	// message that stays queued until the test ends.
	sendOnly := func(t *testing.T, target *mach.ReceiveRight) mach.Name {
		s, err := target.MakeSend()
		require.NoError(t, err)
		carrier, carrierSend := newPort(t, mach.PortOptions{})
		require.NoError(t, mach.Send(context.Background(), &mach.Message{Remote: mach.CopySendOf(carrierSend),
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MoveReceiveOf(target)}}}))
		t.Cleanup(func() { mach.Drain(carrier) }) // destroys the moved receive right
		return s.Name()
	}
	for _, tc := range []struct {
		name     string
		make     func(*testing.T, *mach.ReceiveRight) mach.Name
		release  func(mach.Name) error
		sendOnce bool
	}{
		{"send-once, deallocate", sendOnce, mach.Deallocate, true},
		{"send-once, mod_refs -1", sendOnce, func(n mach.Name) error { return mach.ModRefs(n, mach.RightSendOnce, -1) }, true},
		{"send, deallocate", sendOnly, mach.Deallocate, false},
		{"send, mod_refs -1", sendOnly, func(n mach.Name) error { return mach.ModRefs(n, mach.RightSend, -1) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			ctx := ctxTimeout(t, 10*time.Second)
			target, err := mach.NewPort(mach.PortOptions{})
			require.NoError(t, err)
			t.Cleanup(func() { target.Close() })
			notify, _ := newPort(t, mach.PortOptions{})
			name := tc.make(t, target)
			prev, err := mach.RequestNotification(name, mach.NotifyDeadName, 1, notify)
			require.NoError(t, err)
			require.Nil(t, prev)
			st, err := notify.Status()
			require.NoError(t, err)
			require.Equal(t, uint32(1), st.SendOnceCount, "the armed request holds a send-once right")

			require.NoError(t, tc.release(name))
			st, err = notify.Status()
			require.NoError(t, err)
			require.Equal(t, uint32(1), st.MessageCount)
			require.Equal(t, uint32(1), st.SendOnceCount, "the queued notification holds the request's right")
			n := notification(t, ctx, notify)
			require.Equal(t, mach.NotifyPortDeleted, n.Kind)
			require.Equal(t, name, n.Name)
			st, err = notify.Status()
			require.NoError(t, err)
			require.Zero(t, st.SendOnceCount, "the notification used the request's right")
			if tc.sendOnce {
				require.Equal(t, mach.NotifySendOnce, notification(t, ctx, target).Kind,
					"the send-once right itself was released unused")
			}
		})
	}
}

// A port's first message has sequence number 0: ipc_mqueue_receive_on_thread hands out
// imq_seqno++, which starts at 0; the status then reports the next one.
func TestFidelitySeqnoStartsAtZero(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 10*time.Second)
	r, s := newPort(t, mach.PortOptions{})
	for want := range uint32(3) {
		send(t, ctx, s, int32(want), nil)
		require.Equal(t, want, receive(t, ctx, r).Trailer.Seqno)
	}
	st, err := r.Status()
	require.NoError(t, err)
	require.Equal(t, uint32(3), st.Seqno)
}

// fullPort makes a port with room for one message and fills it, so that a send to it times out.
func fullPort(t *testing.T, ctx context.Context) *mach.SendRight {
	t.Helper()
	_, s := newPort(t, mach.PortOptions{QueueLimit: 1})
	send(t, ctx, s, 1, nil)
	return s
}

// sendTimingOut sends m to a full port and expects MACH_SEND_TIMED_OUT.
func sendTimingOut(t *testing.T, m *mach.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, mach.Send(ctx, m), mach.SendTimedOut)
}

// A timed-out send is handed back with the rights its copy-in made (mach_msg_trap_send,
// ipc_kmsg_copyout_pseudo), and Send releases them: a MAKE_SEND_ONCE right sends
// MACH_NOTIFY_SEND_ONCE, a MAKE_SEND right counts in the make-send count and fires an armed
// no-senders request, and a COPY_SEND reference comes back to the count it had.
func TestFidelityTimedOutSendMadeItsRights(t *testing.T) {
	t.Run("MAKE_SEND_ONCE reply", func(t *testing.T) {
		checkLeaks(t)
		ctx := ctxTimeout(t, 10*time.Second)
		dest := fullPort(t, ctx)
		reply, _ := newPort(t, mach.PortOptions{})
		before, err := mach.Refs(dest.Name(), mach.RightSend)
		require.NoError(t, err)
		sendTimingOut(t, &mach.Message{Remote: mach.CopySendOf(dest), Local: mach.MakeSendOnceOf(reply), ID: 2})
		require.Equal(t, mach.NotifySendOnce, notification(t, ctx, reply).Kind)
		after, err := mach.Refs(dest.Name(), mach.RightSend)
		require.NoError(t, err)
		require.Equal(t, before, after, "the COPY_SEND reference that came back was released")
	})
	t.Run("MAKE_SEND descriptor", func(t *testing.T) {
		checkLeaks(t)
		ctx := ctxTimeout(t, 10*time.Second)
		dest := fullPort(t, ctx)
		made, err := mach.NewPort(mach.PortOptions{})
		require.NoError(t, err)
		defer made.Close()
		notify, _ := newPort(t, mach.PortOptions{})
		prev, err := made.RequestNoSenders(1, notify)
		require.NoError(t, err)
		require.Nil(t, prev)
		sendTimingOut(t, &mach.Message{Remote: mach.CopySendOf(dest), ID: 2,
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MakeSendOf(made)}}})
		n := notification(t, ctx, notify)
		require.Equal(t, mach.NotifyNoSenders, n.Kind)
		require.Equal(t, uint32(1), n.MakeSendCount)
		st, err := made.Status()
		require.NoError(t, err)
		require.Equal(t, uint32(1), st.MakeSendCount, "the send right was made")
		require.False(t, st.SendRights)
	})
}

// MACH_PORT_NULL and MACH_PORT_DEAD in a port descriptor travel as they are, with the type the
// disposition gives (ipc_kmsg_copyin_port_descriptor takes an invalid name as its port;
// ipc_kmsg_copyout_object gives it back).
func TestFidelityNullPortDescriptor(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 10*time.Second)
	r, s := newPort(t, mach.PortOptions{})
	ports := []mach.Port{
		{Name: mach.NameNull, Disposition: mach.CopySend},
		{Name: mach.NameNull, Disposition: mach.MakeSendOnce},
		{Name: mach.NameDead, Disposition: mach.MoveSend},
	}
	want := []mach.Disposition{mach.PortSend, mach.PortSendOnce, mach.PortSend}
	m := &mach.Message{Remote: mach.CopySendOf(s), ID: 8}
	for _, p := range ports {
		m.Descriptors = append(m.Descriptors, &mach.PortDescriptor{Port: p})
	}
	require.NoError(t, mach.Send(ctx, m))
	got := receive(t, ctx, r)
	require.Len(t, got.Descriptors, len(ports))
	for i, d := range got.Descriptors {
		pd, ok := d.(*mach.PortDescriptor)
		require.True(t, ok, "descriptor %d", i)
		require.Equal(t, ports[i].Name, pd.Port.Name, "descriptor %d", i)
		require.Equal(t, want[i], pd.Port.Disposition, "descriptor %d", i)
	}
}

// A port's message count includes messages that came through send-once rights (mps_msgcount is
// every message on the queue), though they do not count against the queue limit.
func TestFidelityMessageCountIncludesSendOnce(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout(t, 10*time.Second)
	r, s := newPort(t, mach.PortOptions{})
	so, err := r.MakeSendOnce()
	require.NoError(t, err)
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOnceOf(so), ID: 1}))
	st, err := r.Status()
	require.NoError(t, err)
	require.Equal(t, uint32(1), st.MessageCount)
	send(t, ctx, s, 2, nil)
	st, err = r.Status()
	require.NoError(t, err)
	require.Equal(t, uint32(2), st.MessageCount)
	receive(t, ctx, r)
	receive(t, ctx, r)
	st, err = r.Status()
	require.NoError(t, err)
	require.Zero(t, st.MessageCount)
}
