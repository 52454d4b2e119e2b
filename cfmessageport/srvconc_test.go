package cfmessageport_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/rerun"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// gatedServer serves with a handler that holds every request whose data starts with "hold"
// until release is closed, and records how many handlers ran at once at most.
type gatedServer struct {
	srv     *cfmessageport.Server
	started chan struct{}
	release chan struct{}
	let     sync.Once
	running atomic.Int32
	most    atomic.Int32
}

func newGatedServer(t *testing.T, concurrency int) *gatedServer {
	g := &gatedServer{started: make(chan struct{}, 128), release: make(chan struct{})}
	g.srv = listen(t, cfmessageport.HandlerFunc(func(_ context.Context, req *cfmessageport.Message) ([]byte, error) {
		n := g.running.Add(1)
		defer g.running.Add(-1)
		for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
		}
		if len(req.Data) >= 4 && string(req.Data[:4]) == "hold" {
			g.started <- struct{}{}
			<-g.release
		}
		return req.Data, nil
	}), &cfmessageport.ServerOptions{Concurrency: concurrency})
	t.Cleanup(g.letGo) // before the server's Close, which waits for the handlers
	return g
}

func (g *gatedServer) letGo() { g.let.Do(func() { close(g.release) }) }

// sendRaw queues a CF request with conversation id conv and a reply right to reply.
func sendRaw(t *testing.T, ctx context.Context, service *mach.SendRight, reply *mach.ReceiveRight, conv int32, data string) {
	var m mach.Message
	require.NoError(t, (&wire.Packet{MsgID: 1, ConvID: conv, Data: []byte(data)}).
		Encode(&m, mach.CopySendOf(service), mach.MakeSendOnceOf(reply)))
	require.NoError(t, mach.Send(ctx, &m))
}

// rawReplies receives n replies on reply, by conversation id, failing at the first request
// destroyed unanswered (its reply right's send-once notification).
func rawReplies(t *testing.T, ctx context.Context, reply *mach.ReceiveRight, n int) map[int32]string {
	got := map[int32]string{}
	for len(got) < n {
		var in mach.Message
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := mach.Receive(rctx, reply, &in)
		cancel()
		require.NoError(t, err, "answered so far: %v", got)
		if mach.IsNotificationID(in.ID) {
			_ = in.Destroy()
			t.Fatalf("a request was destroyed unanswered; answered: %v", got)
		}
		pk, err := wire.Decode(&in, true)
		require.NoError(t, err)
		got[-pk.ConvID] = string(pk.Data)
		_ = in.Destroy()
	}
	return got
}

// A server with Concurrency N runs N handlers at once, and no more: N requests held by their
// handlers are all inside at once, and the requests queued behind them wait for a free one.
// Then Shutdown answers what was queued behind them, every receive loop ends (Shutdown
// returns, Done is closed, nothing is left running) and Err says ErrServerClosed.
func TestConcurrentServerShutdown(t *testing.T) {
	leakcheck.Check(t)
	for _, n := range []int{1, 2, 8, 64} {
		t.Run(fmt.Sprint("concurrency ", n), func(t *testing.T) {
			ctx := ctxTimeout(t, 20*time.Second)
			g := newGatedServer(t, n)
			service, reply := rawPeer(t, ctx, g.srv.Name())
			want := map[int32]string{}
			for i := range int32(n) {
				data := fmt.Sprintf("hold %d", i)
				sendRaw(t, ctx, service, reply, i+1, data)
				want[i+1] = data
			}
			for range n {
				select {
				case <-g.started:
				case <-ctx.Done():
					t.Fatalf("fewer than %d handlers ran at once", n)
				}
			}
			const queued = 5 // the default queue limit
			for i := range int32(queued) {
				data := fmt.Sprintf("queued %d", i)
				sendRaw(t, ctx, service, reply, int32(n)+i+1, data)
				want[int32(n)+i+1] = data
			}
			_ = service.Close() // see shutdownPeer.shutdown
			short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			require.ErrorIs(t, g.srv.Shutdown(short), context.DeadlineExceeded)
			cancel()
			g.letGo()
			require.NoError(t, g.srv.Shutdown(ctx))
			require.Equal(t, want, rawReplies(t, ctx, reply, len(want)))
			require.LessOrEqual(t, int(g.most.Load()), n, "handlers at once")
			require.ErrorIs(t, g.srv.Err(), cfmessageport.ErrServerClosed)
			select {
			case <-g.srv.Done():
			default:
				t.Fatal("Done is open after Shutdown returned")
			}
		})
	}
}

// Close ends a server whose receive loops all wait on an empty queue, and one whose loops are
// all in handlers: no loop is left waiting for a message that never comes.
func TestConcurrentServerClose(t *testing.T) {
	leakcheck.Check(t)
	for _, n := range []int{1, 2, 8, 64} {
		for _, busy := range []bool{false, true} {
			t.Run(fmt.Sprintf("concurrency %d busy %v", n, busy), func(t *testing.T) {
				ctx := ctxTimeout(t, 20*time.Second)
				g := newGatedServer(t, n)
				r := dial(t, ctx, g.srv.Name())
				require.NoError(t, roundTrip(ctx, r))
				if busy {
					for range n {
						go func() { _, _ = r.Request(ctx, 1, []byte("hold")) }()
					}
					for range n {
						<-g.started
					}
				}
				closed := make(chan error, 1)
				go func() { closed <- g.srv.Close() }()
				g.letGo()
				select {
				case err := <-closed:
					require.NoError(t, err)
				case <-ctx.Done():
					t.Fatal("Close did not return")
				}
				require.ErrorIs(t, g.srv.Err(), cfmessageport.ErrServerClosed)
			})
		}
	}
}

// allocsAloneEnv, set to 1, tells a child of the test binary that it runs
// TestConcurrentServerAllocations alone.
const allocsAloneEnv = "MACHPORT_TEST_ALLOCS_ALONE"

func roundTrip(ctx context.Context, r *cfmessageport.Remote) error {
	got, err := r.Request(ctx, 1, []byte("ping"))
	if err == nil && string(got) != "ping" {
		err = fmt.Errorf("answered %q", got)
	}
	return err
}

// A server with Concurrency N allocates no more per request than one with Concurrency 1: a
// request is received and handled on the same goroutine, into a message (and buffer) that
// goroutine reuses, with no goroutine started and no message allocated for it.
//
// The count is the whole process's, so the test measures in a child of its own: in the package's
// full run, other tests' goroutines winding down added up to 13 allocations per request to one
// side or the other (CI saw 28.40 against 30.63 where 15.4 against 15.5 is the quiet figure).
func TestConcurrentServerAllocations(t *testing.T) {
	if os.Getenv(allocsAloneEnv) == "" {
		rerun.Test(t, allocsAloneEnv+"=1")
		return
	}
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	remote := func(n int) *cfmessageport.Remote {
		srv := listen(t, echo, &cfmessageport.ServerOptions{Concurrency: n})
		r := dial(t, ctx, srv.Name())
		require.NoError(t, roundTrip(ctx, r)) // warm
		return r
	}
	// The whole process's allocations are counted, the requester's too, and whatever else runs
	// meanwhile: the least of three interleaved rounds of each, with a margin of 2 (a goroutine
	// and a message per request, as the hand-off to a handler goroutine cost, come to 6).
	perRequest := func(r *cfmessageport.Remote) float64 {
		const k = 2000
		// Each round's own 20 s against a request that hangs: one context for all six rounds
		// (12,000 requests, and the set-up) ran out after 20.45 s in the suite through the
		// libSystem double, under -race on a loaded machine.
		ctx := ctxTimeout(t, 20*time.Second)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range k {
			require.NoError(t, roundTrip(ctx, r))
		}
		runtime.ReadMemStats(&after)
		return float64(after.Mallocs-before.Mallocs) / k
	}
	r1, r16 := remote(1), remote(16)
	one, many := math.Inf(1), math.Inf(1)
	for range 3 {
		one, many = min(one, perRequest(r1)), min(many, perRequest(r16))
	}
	t.Logf("allocations per request: %.2f with Concurrency 1, %.2f with 16", one, many)
	require.LessOrEqual(t, many, one+2)
}
