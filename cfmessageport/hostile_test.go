package cfmessageport_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A peer sends the server each kind of corrupt message, each with a reply right. The server
// drops every one as CF does: no reply (the reply right is destroyed, so the peer's reply port
// gets a send-once notification), nothing leaked, and it keeps serving.
func TestServerDropsCorruptRequests(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	srv := listen(t, echo, nil)
	service, err := bootstrap.LookUp(ctx, srv.Name())
	require.NoError(t, err)
	defer service.Close()
	reply, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer reply.Close()

	valid := func() []byte {
		var m mach.Message
		p := cfmessageport.Packet{MsgID: 1, ConvID: 1, Data: []byte("12345678")}
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
		m.Remote, m.Local, m.ID = mach.CopySendOf(service), mach.MakeSendOnceOf(reply), cfmessageport.MsgID
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
	reg, err := bootstrap.Register(uniqueName(t), port, bootstrap.Options{})
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
