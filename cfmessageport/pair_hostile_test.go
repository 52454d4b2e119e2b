package cfmessageport_test

import (
	"context"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// msgh_id of the fast handshake's request ('mpfr'), as a hostile peer would forge it.
const pairFastID = 0x6d706672

// A peer sends the listener malformed handshakes of both kinds. Each is refused (a fast one with
// an empty answer, or by destroying its reply right; a names one with no data), nothing is
// accepted or leaked, and the listener goes on pairing.
func TestPairHostileHandshakes(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	l, err := cfmessageport.ListenPair(uniqueName(t), echo, nil)
	require.NoError(t, err)
	defer l.Close()
	service, reply := rawPeer(t, ctx, l.Name())
	spare, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer spare.Close()

	magic := []byte("mpair/1\x00")
	fast := []struct {
		name string
		msg  func() *mach.Message
	}{
		{"no descriptor", func() *mach.Message { return &mach.Message{Body: magic} }},
		{"wrong magic", func() *mach.Message {
			return &mach.Message{Body: []byte("mpair/2\x00"), Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MakeSendOf(spare)}}}
		}},
		{"a send-once right", func() *mach.Message {
			return &mach.Message{Body: magic, Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MakeSendOnceOf(spare)}}}
		}},
		{"two ports", func() *mach.Message {
			return &mach.Message{Body: magic, Descriptors: []mach.Descriptor{
				&mach.PortDescriptor{Port: mach.MakeSendOf(spare)}, &mach.PortDescriptor{Port: mach.MakeSendOf(spare)}}}
		}},
		{"memory instead of a port", func() *mach.Message {
			return &mach.Message{Body: magic, Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Data: make([]byte, 64)}}}
		}},
	}
	for _, tc := range fast {
		m := tc.msg()
		m.ID, m.Remote, m.Local = pairFastID, mach.CopySendOf(service), mach.MakeSendOnceOf(reply)
		require.NoError(t, mach.Send(ctx, m), tc.name)
		var got mach.Message
		require.NoError(t, mach.Receive(ctx, reply, &got), tc.name)
		require.Empty(t, got.Descriptors, "%s: the answer carries no port", tc.name)
		require.NoError(t, got.Destroy())
	}
	// A fast handshake without a reply right, which cannot be answered.
	require.NoError(t, mach.Send(ctx, &mach.Message{ID: pairFastID, Remote: mach.CopySendOf(service), Body: magic,
		Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MakeSendOf(spare)}}}))

	r := dial(t, ctx, l.Name())
	for _, data := range [][]byte{nil, {}, []byte("a\x00b"), []byte("\xff\xfe"), []byte(strings.Repeat("n", 128)),
		[]byte(uniqueName(t) + ".nobody")} {
		got, err := r.Request(ctx, cfmessageport.PairMsgID, data)
		require.NoError(t, err, "%q", data)
		require.Empty(t, got, "names handshake with %q is refused", data)
	}
	require.NoError(t, r.Send(ctx, cfmessageport.PairMsgID, []byte(uniqueName(t))), "a one-way handshake")

	select {
	case c := <-acceptNow(l):
		t.Fatalf("a malformed handshake made a connection (%q)", c.LocalName())
	default:
	}
	client, err := cfmessageport.DialPair(ctx, l.Name(), echo, nil)
	require.NoError(t, err)
	defer client.Close()
	server, err := l.Accept(ctx)
	require.NoError(t, err)
	defer server.Close()
	got, err := server.Request(ctx, msgEcho, []byte("still pairing"))
	require.NoError(t, err)
	require.Equal(t, "still pairing", string(got))
}

// acceptNow returns a channel holding a connection if one is waiting for Accept right now.
func acceptNow(l *cfmessageport.PairListener) chan *cfmessageport.Conn {
	ch := make(chan *cfmessageport.Conn, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if c, err := l.Accept(ctx); err == nil {
		ch <- c
	}
	return ch
}

// A fast handshake whose reply right is a send right (not send-once) is not answered, and the
// listener keeps nothing of it: the peer's port sees no senders. (No name-count check here: the
// listener is in this process, and a look-up of an own port shares its name, which leaves a dead
// name behind when the listener closes first; see Dial's note.)
func TestPairFastHandshakeWithSendRightReleased(t *testing.T) {
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := cfmessageport.ListenPair(uniqueName(t), echo, nil)
	require.NoError(t, err)
	defer l.Close()
	service, port := rawPeer(t, ctx, l.Name())
	notify, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer notify.Close()
	require.NoError(t, mach.Send(ctx, &mach.Message{ID: pairFastID, Remote: mach.CopySendOf(service),
		Local: mach.MakeSendOf(port), Body: []byte("mpair/1\x00")}))
	prev, err := port.RequestNoSenders(1, notify)
	require.NoError(t, err)
	if prev != nil {
		prev.Close()
	}
	var n mach.Message
	require.NoError(t, mach.Receive(ctx, notify, &n), "the listener still holds the send right")
	got, err := mach.ParseNotification(&n)
	require.NoError(t, err)
	require.Equal(t, mach.NotifyNoSenders, got.Kind)
	require.NoError(t, n.Destroy())
}

// Names handshakes naming a service that never answers look-ups (a stopped process, in the
// emulation) are bounded and refused beyond the limit: they cannot stall the listener, and a
// legitimate client still pairs at once.
func TestPairStalledHandshakesDoNotWedgeTheListener(t *testing.T) {
	ctx := ctxTimeout(t, 30*time.Second)
	l, err := cfmessageport.ListenPair(uniqueName(t), echo, nil)
	require.NoError(t, err)
	defer l.Close()
	stuck := uniqueName(t)
	child := startChild(t, "serve", stuck)
	require.NoError(t, child.Cmd.Process.Signal(syscall.SIGSTOP))
	defer child.Cmd.Process.Signal(syscall.SIGCONT)

	r := dial(t, ctx, l.Name())
	var wg sync.WaitGroup
	for range 80 { // more than the listener serves at once
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = r.Request(ctx, cfmessageport.PairMsgID, []byte(stuck)) }()
	}
	defer wg.Wait()
	time.Sleep(200 * time.Millisecond)
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := cfmessageport.DialPair(dctx, l.Name(), echo, nil)
	require.NoError(t, err, "a legitimate client could not pair")
	require.NoError(t, c.Close())
}
