package cfmessageport_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// shutdownPeer is a raw CF client of a server whose handler holds its first request until
// release is closed: the requests sent after it wait in the port's queue, in the order sent.
type shutdownPeer struct {
	t       *testing.T
	ctx     context.Context
	srv     *cfmessageport.Server
	service *mach.SendRight
	reply   *mach.ReceiveRight
	release chan struct{}
	let     sync.Once
}

func newShutdownPeer(t *testing.T, ctx context.Context) *shutdownPeer {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	srv := listen(t, cfmessageport.HandlerFunc(func(_ context.Context, req *cfmessageport.Message) ([]byte, error) {
		if string(req.Data) == "first" {
			started <- struct{}{}
			<-release
		}
		return req.Data, nil
	}), &cfmessageport.ServerOptions{ErrorLog: slog.New(&recordingHandler{})})
	service, reply := rawPeer(t, ctx, srv.Name())
	p := &shutdownPeer{t: t, ctx: ctx, srv: srv, service: service, reply: reply, release: release}
	t.Cleanup(p.letGo) // before the server's Close, which waits for the handler
	p.send(1, "first")
	<-started
	return p
}

func (p *shutdownPeer) letGo() { p.let.Do(func() { close(p.release) }) }

// send queues a CF request with conversation id conv; mach.Send returns once it is queued.
func (p *shutdownPeer) send(conv int32, data string) {
	var m mach.Message
	require.NoError(p.t, (&wire.Packet{MsgID: 1, ConvID: conv, Data: []byte(data)}).
		Encode(&m, mach.CopySendOf(p.service), mach.MakeSendOnceOf(p.reply)))
	require.NoError(p.t, mach.Send(p.ctx, &m))
}

// shutdown queues Shutdown's stop message behind what is queued (the first Shutdown gives up at
// once, since the handler still holds the first request), lets the handler go, and waits for
// the graceful end.
func (p *shutdownPeer) shutdown() {
	// Released while its port lives: a send right of this process to its own server's port
	// that outlives the port leaves a dead name behind (seen on the emulation; not what these
	// tests are about).
	_ = p.service.Close()
	short, cancel := context.WithTimeout(p.ctx, 20*time.Millisecond)
	require.ErrorIs(p.t, p.srv.Shutdown(short), context.DeadlineExceeded)
	cancel()
	p.letGo()
	require.NoError(p.t, p.srv.Shutdown(p.ctx))
}

// replies receives n replies, by conversation id, failing at the first request destroyed
// unanswered (its reply right's send-once notification).
func (p *shutdownPeer) replies(n int) map[int32]string {
	got := map[int32]string{}
	for len(got) < n {
		var in mach.Message
		rctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		err := mach.Receive(rctx, p.reply, &in)
		cancel()
		require.NoError(p.t, err, "answered so far: %v", got)
		if mach.IsNotificationID(in.ID) {
			_ = in.Destroy()
			p.t.Fatalf("a request queued before Shutdown was destroyed unanswered; answered: %v", got)
		}
		pk, err := wire.Decode(&in, true)
		require.NoError(p.t, err)
		got[-pk.ConvID] = string(pk.Data)
		_ = in.Destroy()
	}
	return got
}

// Shutdown promises that "the requests queued before it are still answered". On the
// emulation the stop message travels on a send-once channel of its own, and a port reads its
// channels in no fixed order (tryPort ranges over the p.chans map, or takes epoll's order), so
// the stop message can overtake requests queued before it on the client's channel: those are
// destroyed with the port, and their requesters get kCFMessagePortBecameInvalidError.
// TestShutdown shows it too, in about 1 run of 10 (3 of 30 here), with one queued request. With
// 5 queued requests (the default queue limit) one round fails about 1 time in 3; the test runs
// 10 rounds, each with a new server.
func TestShutdownAnswersEverythingQueuedBeforeIt(t *testing.T) {
	leakcheck.Check(t)
	for round := range 10 {
		t.Run(fmt.Sprint("round ", round), func(t *testing.T) {
			ctx := ctxTimeout(t, 20*time.Second)
			p := newShutdownPeer(t, ctx)
			const queued = 5 // the default queue limit
			want := map[int32]string{1: "first"}
			for i := range int32(queued) {
				data := fmt.Sprintf("queued %d", i)
				p.send(i+2, data)
				want[i+2] = data
			}
			p.shutdown()
			require.Equal(t, want, p.replies(queued+1))
			require.ErrorIs(t, p.srv.Err(), cfmessageport.ErrServerClosed)
		})
	}
}
