package mach_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A receive with no deadline and no cancellation blocks until something arrives. Whatever
// arrives, a notification the kernel queues, a message through a right made meanwhile, or the
// death of the port, must end it at once, however the wait is implemented (on Linux the
// emulation blocks such a receive in recvmsg on the port's only channel).

// blockedReceive starts a receive on r with context.Background and returns its result later.
func blockedReceive(t *testing.T, r *mach.ReceiveRight) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	var m mach.Message
	go func() {
		err := mach.Receive(context.Background(), r, &m)
		if err == nil {
			t.Cleanup(func() { m.Destroy() })
			if m.ID == 0 {
				err = errors.New("empty message")
			}
		}
		done <- err
	}()
	return done
}

// within waits for a blocked receive to finish; two seconds is far beyond any wake-up and far
// below the emulation's fallback timeout.
func within(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(2 * time.Second):
		t.Fatal("the blocked receive did not wake up")
		return nil
	}
}

func TestBlockedReceiveWakes(t *testing.T) {
	cases := []struct {
		name string
		// act runs while a receive blocks on r, whose one send right is s.
		act func(t *testing.T, r *mach.ReceiveRight, s *mach.SendRight)
		// wantErr is the receive's error: a port destroyed or moved away under a waiting
		// receive gives MACH_RCV_PORT_CHANGED on every platform (xnu's ipc_mqueue_changed wakes
		// the thread with THREAD_RESTART, which ipc_mqueue_receive_results turns into it).
		wantErr error
	}{
		{"a notification is queued", func(t *testing.T, r *mach.ReceiveRight, _ *mach.SendRight) {
			other, otherSend := newPort(t, mach.PortOptions{})
			_, err := other.RequestNoSenders(0, r)
			require.NoError(t, err)
			require.NoError(t, otherSend.Close())
		}, nil},
		{"a send-once right is made and used", func(t *testing.T, r *mach.ReceiveRight, _ *mach.SendRight) {
			so, err := r.MakeSendOnce()
			require.NoError(t, err)
			require.NoError(t, mach.Send(context.Background(), &mach.Message{Remote: mach.MoveSendOnceOf(so), ID: 7}))
		}, nil},
		{"a send-once right is made and dropped", func(t *testing.T, r *mach.ReceiveRight, _ *mach.SendRight) {
			so, err := r.MakeSendOnce()
			require.NoError(t, err)
			require.NoError(t, so.Close())
		}, nil},
		{"the receive right is closed", func(t *testing.T, r *mach.ReceiveRight, _ *mach.SendRight) {
			require.NoError(t, r.Close())
		}, mach.RcvPortChanged},
		{"the receive right is moved away", func(t *testing.T, r *mach.ReceiveRight, _ *mach.SendRight) {
			carrier, carrierSend := newPort(t, mach.PortOptions{})
			require.NoError(t, mach.Send(context.Background(), &mach.Message{Remote: mach.CopySendOf(carrierSend), ID: 5,
				Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MoveReceiveOf(r)}}}))
			t.Cleanup(func() { mach.Drain(carrier) }) // destroys the moved right with its message
		}, mach.RcvPortChanged},
		{"a message arrives", func(t *testing.T, _ *mach.ReceiveRight, s *mach.SendRight) {
			send(t, context.Background(), s, 9, nil)
		}, nil},
	}
	for _, w := range blockedWaits {
		for _, c := range cases {
			t.Run(w.name+"/"+c.name, func(t *testing.T) {
				checkLeaks(t)
				r, s := newPort(t, mach.PortOptions{})
				w.prepare(t, s)
				before := directWaits()
				done := blockedReceive(t, r)
				w.waitBlocked(t, r, before)
				c.act(t, r, s)
				err := within(t, done)
				if c.wantErr != nil {
					require.ErrorIs(t, err, c.wantErr)
				} else {
					require.NoError(t, err)
				}
			})
		}
	}
}

// A wake-up that comes just as the receiver blocks must not be lost.
func TestBlockedReceiveWakesUnderRace(t *testing.T) {
	checkLeaks(t)
	r, _ := newPort(t, mach.PortOptions{})
	for range 300 {
		done := blockedReceive(t, r)
		so, err := r.MakeSendOnce()
		require.NoError(t, err)
		require.NoError(t, so.Close())
		require.NoError(t, within(t, done))
	}
}

// Two receivers on one port, one blocked without a deadline and one with a deadline, see a
// send-once right's fate once: its message, or a single MACH_NOTIFY_SEND_ONCE when it is
// dropped unused, never both and never twice.
func TestTwoReceiversSeeSendOnceOnce(t *testing.T) {
	checkLeaks(t)
	for _, used := range []bool{false, true} {
		for range 60 {
			r, err := mach.NewPort(mach.PortOptions{})
			require.NoError(t, err)
			so, err := r.MakeSendOnce()
			require.NoError(t, err)
			got := make(chan int32, 4)
			recv := func(ctx context.Context) {
				var m mach.Message
				if mach.Receive(ctx, r, &m) == nil {
					got <- m.ID
					m.Destroy()
				}
			}
			go recv(context.Background())
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			go recv(ctx)
			if used {
				require.NoError(t, mach.Send(context.Background(), &mach.Message{Remote: mach.MoveSendOnceOf(so), ID: 7}))
			} else {
				require.NoError(t, so.Close())
			}
			want := int32(7)
			if !used {
				want = int32(mach.NotifySendOnce)
			}
			select {
			case id := <-got:
				require.Equal(t, want, id)
			case <-time.After(2 * time.Second):
				t.Fatal("nothing arrived")
			}
			<-ctx.Done()
			cancel()
			require.NoError(t, r.Close()) // ends the receiver without a deadline
			time.Sleep(time.Millisecond)
			select {
			case id := <-got:
				t.Fatalf("a second message arrived: id %d", id)
			default:
			}
		}
	}
}

// A cancellable receive waiting on a receive right that moves away (to another name of this
// process) ends with MACH_RCV_PORT_CHANGED too, and the right, received at its new name, is a
// port like any other: it waits for its next message, which comes through.
func TestCancellableReceiveOnAMovedRight(t *testing.T) {
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, s := newPort(t, mach.PortOptions{})
	done := make(chan error, 1)
	go func() {
		var m mach.Message
		done <- mach.Receive(ctx, r, &m)
	}()
	time.Sleep(50 * time.Millisecond) // let it wait
	carrier, carrierSend := newPort(t, mach.PortOptions{})
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(carrierSend), ID: 5,
		Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MoveReceiveOf(r)}}}))
	require.ErrorIs(t, within(t, done), mach.RcvPortChanged)

	var in mach.Message
	require.NoError(t, mach.Receive(ctx, carrier, &in))
	right, err := in.TakePort(0)
	require.NoError(t, err)
	require.NoError(t, in.Destroy())
	moved := right.(*mach.ReceiveRight)
	defer moved.Close()
	short, cancelShort := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancelShort()
	var m mach.Message
	require.ErrorIs(t, mach.Receive(short, moved, &m), mach.RcvTimedOut, "nothing is queued")
	send(t, ctx, s, 11, nil)
	require.NoError(t, mach.Receive(ctx, moved, &m))
	require.Equal(t, int32(11), m.ID)
	require.NoError(t, m.Destroy())
}
