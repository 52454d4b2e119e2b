package cfmessageport_test

import (
	"context"
	"encoding/binary"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// rawPeer is a client that speaks raw mach to a service: a send right to it and a reply port,
// both released at the end of the test.
func rawPeer(t *testing.T, ctx context.Context, name string) (*mach.SendRight, *mach.ReceiveRight) {
	t.Helper()
	service, err := bootstrap.LookUp(ctx, name)
	require.NoError(t, err)
	t.Cleanup(func() { service.Close() })
	reply, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { reply.Close() })
	return service, reply
}

// A peer sends the server each kind of corrupt message, each with a reply right. The server
// drops every one as CF does: no reply (the reply right is destroyed, so the peer's reply port
// gets a send-once notification), nothing leaked, and it keeps serving.
func TestServerDropsCorruptRequests(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	srv := listen(t, echo, nil)
	service, reply := rawPeer(t, ctx, srv.Name())

	valid := func() []byte {
		var m mach.Message
		p := wire.Packet{MsgID: 1, ConvID: 1, Data: []byte("12345678")}
		require.NoError(t, p.Encode(&m, mach.Port{}, mach.Port{}))
		return m.Body
	}
	put := func(b []byte, off int, v uint32) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	// Offsets below are into the body, which starts at message offset 24.
	corrupt := map[string]*mach.Message{
		"too small":             {Body: nil},
		"bad magic":             {Body: put(valid(), 20, 0x01020304)},
		"byteslen below -1":     {Body: put(valid(), 32, 0xfffffff0)},
		"byteslen past the end": {Body: put(valid(), 32, 9)},
		"convid 0":              {Body: put(valid(), 28, 0)},
		"negative convid":       {Body: put(valid(), 28, 0x80000000)},
		"inline over 4060":      {Body: put(append(valid(), make([]byte, 4000)...), 32, 4008)},
		"two descriptors": {Body: valid()[20:36], Descriptors: []mach.Descriptor{
			&mach.OOLDescriptor{Data: make([]byte, 8)}, &mach.OOLDescriptor{Data: make([]byte, 8)}}},
		"a port instead of memory": {Body: valid()[20:36], Descriptors: []mach.Descriptor{
			&mach.PortDescriptor{Port: mach.MakeSendOf(reply)}}},
		"out-of-line size differs": {Body: put(valid()[20:36], 12, 9), Descriptors: []mach.Descriptor{
			&mach.OOLDescriptor{Data: make([]byte, 5000)}}},
	}
	for name, m := range corrupt {
		m.Remote, m.Local, m.ID = mach.CopySendOf(service), mach.MakeSendOnceOf(reply), wire.MsgID
		require.NoError(t, mach.Send(ctx, m), name)
		var got mach.Message
		require.NoError(t, mach.Receive(ctx, reply, &got), name)
		n, err := mach.ParseNotification(&got)
		require.NoError(t, err, "%s: the answer is the dropped reply right's notification, not a reply", name)
		require.Equal(t, mach.NotifySendOnce, n.Kind, name)
		require.NoError(t, got.Destroy())
	}
	require.Equal(t, uint64(len(corrupt)), srv.Dropped())

	r := dial(t, ctx, srv.Name())
	got, err := r.Request(ctx, msgEcho, []byte("still serving"))
	require.NoError(t, err)
	require.Equal(t, "still serving", string(got))
}

// A service that answers a request with a forged dead-name notification does not invalidate
// the remote: only the kernel's notifications count.
func TestRemoteIgnoresForgedNotifications(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	port, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	reg, err := bootstrap.Register(uniqueName(t), port, &bootstrap.Options{})
	require.NoError(t, err)
	defer reg.Close()
	go func() {
		var req mach.Message
		if mach.Receive(ctx, reg.Port(), &req) != nil {
			return
		}
		so, _ := req.TakeRemote().(*mach.SendOnceRight)
		_ = req.Destroy()
		if so == nil {
			return
		}
		forged := &mach.Message{Remote: mach.MoveSendOnceOf(so), ID: int32(mach.NotifyDeadName), Body: make([]byte, 12)}
		if mach.Send(ctx, forged) != nil {
			so.Close()
		}
	}()
	r := dial(t, ctx, reg.Name())
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = r.Request(short, msgEcho, []byte("x"))
	require.ErrorIs(t, err, cfmessageport.ErrReceiveTimeout)
	select {
	case <-r.Invalidated():
		t.Fatal("a forged notification invalidated the remote")
	default:
	}
}

// A request whose reply right is a send right (not send-once) gets no reply, and the server
// releases the right instead of keeping it.
func TestServerReleasesSendRightReplyPorts(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	srv := listen(t, echo, nil)
	service, reply := rawPeer(t, ctx, srv.Name())
	for range 5 {
		var m mach.Message
		p := wire.Packet{MsgID: msgEcho, ConvID: 1, Data: []byte("x")}
		require.NoError(t, p.Encode(&m, mach.CopySendOf(service), mach.MakeSendOf(reply)))
		require.NoError(t, mach.Send(ctx, &m))
	}
	r := dial(t, ctx, srv.Name())
	_, err := r.Request(ctx, msgEcho, nil) // the five before it are done
	require.NoError(t, err)
}

// With the server's queue full, a request with a deadline fails with ErrSendTimeout, and a
// request without one is ended by closing the remote.
func TestFullQueue(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	release := make(chan struct{})
	srv := listen(t, cfmessageport.HandlerFunc(func(context.Context, *cfmessageport.Message) ([]byte, error) {
		<-release
		return nil, nil
	}), nil)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the server's Close, which waits for the handler
	r := dial(t, ctx, srv.Name())
	var sawTimeout bool
	for range 200 {
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		err := r.Send(short, msgEcho, nil)
		cancel()
		if err != nil {
			require.ErrorIs(t, err, cfmessageport.ErrSendTimeout)
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			sawTimeout = true
			break
		}
	}
	require.True(t, sawTimeout, "the queue never filled")

	errs := make(chan error, 4)
	for range 4 {
		go func() { _, err := r.Request(context.Background(), msgEcho, nil); errs <- err }()
	}
	time.Sleep(200 * time.Millisecond)
	require.NoError(t, r.Close())
	for range 4 {
		select {
		case err := <-errs:
			require.ErrorIs(t, err, cfmessageport.ErrInvalid)
		case <-time.After(2 * time.Second):
			t.Fatal("a request blocked on a full queue outlives Close")
		}
	}
	unblock()
}
