package cfmessageport_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

func listen(t *testing.T, h cfmessageport.Handler, opts *cfmessageport.ServerOptions) *cfmessageport.Server {
	t.Helper()
	srv, err := cfmessageport.Listen(uniqueName(t), h, opts)
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return srv
}

func dial(t *testing.T, ctx context.Context, name string) *cfmessageport.Remote {
	t.Helper()
	r, err := cfmessageport.Dial(ctx, name)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRequestReplySizes(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	srv := listen(t, echo, nil)
	r := dial(t, ctx, srv.Name())
	for _, n := range []int{0, 1, 7, 8, 4000, 4001, 64 << 10, 16 << 20} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + n)
		}
		got, err := r.Request(ctx, msgEcho, data)
		require.NoError(t, err, "%d bytes", n)
		require.True(t, bytes.Equal(data, got), "%d bytes come back changed", n)
		require.NotNil(t, got)
	}
	got, err := r.Request(ctx, msgNone, []byte("x"))
	require.NoError(t, err)
	require.NotNil(t, got)
	require.Empty(t, got, "no data arrives as empty data")
}

func TestSenderIdentityAndOneWay(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	got := make(chan *cfmessageport.Message, 1)
	srv := listen(t, cfmessageport.HandlerFunc(func(_ context.Context, req *cfmessageport.Message) ([]byte, error) {
		c := *req
		c.Data = append([]byte(nil), req.Data...)
		got <- &c
		return nil, nil
	}), nil)
	r := dial(t, ctx, srv.Name())
	require.NoError(t, r.Send(ctx, 77, []byte("one way")))
	req := <-got
	require.True(t, req.OneWay)
	require.Equal(t, int32(77), req.MsgID)
	require.Equal(t, "one way", string(req.Data))
	require.Equal(t, os.Getpid(), req.Sender.PID())
	require.Equal(t, uint32(os.Geteuid()), req.Sender.EUID())
}

// 64 goroutines × 1,000 requests of random sizes on one remote, to a server in another process
// that handles 8 at a time: every reply matches its request.
func TestConcurrentRequestsMatchTheirReplies(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 120*time.Second)
	name := uniqueName(t)
	startChild(t, "serveconc", name)
	r := dial(t, ctx, name)
	const goroutines = 64
	each := 1000
	if raceEnabled {
		each = 100 // the race detector slows this tenfold; the interleavings are the same
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for i := range each {
				n := rng.IntN(6000)
				data := make([]byte, n)
				for j := range data {
					data[j] = byte(g + i + j)
				}
				got, err := r.Request(ctx, msgEcho, data)
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, data) {
					errs <- errors.New("a reply does not match its request")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestTimeoutsAndCancel(t *testing.T) {
	leakcheck.Check(t)
	srv := listen(t, echo, &cfmessageport.ServerOptions{Concurrency: 4})
	r := dial(t, ctxTimeout(t, 10*time.Second), srv.Name())

	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := r.Request(short, msgSleep, []byte("300"))
	require.ErrorIs(t, err, cfmessageport.ErrReceiveTimeout)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)

	cctx, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel2)
	_, err = r.Request(cctx, msgSleep, []byte("300"))
	require.ErrorIs(t, err, context.Canceled)

	// The late replies are dropped and the remote still works.
	time.Sleep(350 * time.Millisecond)
	got, err := r.Request(ctxTimeout(t, 5*time.Second), msgEcho, []byte("after"))
	require.NoError(t, err)
	require.Equal(t, "after", string(got))
}

func TestClosedRemoteAndServer(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	srv, err := cfmessageport.Listen(uniqueName(t), echo, nil)
	require.NoError(t, err)
	r, err := cfmessageport.Dial(ctx, srv.Name())
	require.NoError(t, err)
	require.NoError(t, r.Close())
	require.NoError(t, r.Close())
	_, err = r.Request(ctx, msgEcho, nil)
	require.ErrorIs(t, err, cfmessageport.ErrInvalid)
	select {
	case <-r.Invalidated():
	default:
		t.Fatal("a closed remote is not invalidated")
	}

	r2, err := cfmessageport.Dial(ctx, srv.Name())
	require.NoError(t, err)
	defer r2.Close()
	require.NoError(t, srv.Close())
	_, err = cfmessageport.Dial(ctx, srv.Name())
	require.Error(t, err, "the name is withdrawn")
	select {
	case <-r2.Invalidated():
	case <-time.After(time.Second):
		t.Fatal("the remote of a closed server is not invalidated")
	}
	_, err = r2.Request(ctx, msgEcho, []byte("x"))
	require.ErrorIs(t, err, cfmessageport.ErrInvalid, "a remote known to be dead fails at once, as CF's -3")
}

// The server is killed while a request waits: the request fails with ErrBecameInvalid at once,
// although its timeout is 30 s.
func TestServerKilledMidRequest(t *testing.T) {
	leakcheck.Check(t)
	name := uniqueName(t)
	c := startChild(t, "serve", name)
	ctx := ctxTimeout(t, 30*time.Second)
	r := dial(t, ctx, name)
	got, err := r.Request(ctx, msgEcho, []byte("alive"))
	require.NoError(t, err)
	require.Equal(t, "alive", string(got))

	killMidRequest(t, c, func() error { _, err := r.Request(ctx, msgSleep, []byte("20000")); return err })
	<-r.Invalidated()
	_, err = r.Request(ctx, msgEcho, nil)
	require.ErrorIs(t, err, cfmessageport.ErrInvalid)
}

func TestErrorText(t *testing.T) {
	err := error(&cfmessageport.Error{Op: "request", Name: "com.example.x", Status: cfmessageport.ErrBecameInvalid})
	require.Equal(t, `cfmessageport: request "com.example.x": -5 kCFMessagePortBecameInvalidError`, err.Error())
	require.ErrorIs(t, err, cfmessageport.ErrBecameInvalid)
	require.NotErrorIs(t, err, os.ErrDeadlineExceeded)
	require.ErrorIs(t, cfmessageport.ErrSendTimeout, os.ErrDeadlineExceeded)
}

// A requester that goes away before its out-of-line reply is sent: the server's reply send
// fails, and the reply's region and right are released (the leak check covers the server, which
// runs in this process). The handler answers only once the requester is closed, so the order
// holds however slow the machine is (a sleep here failed under load: the request had not reached
// the server when Close ran, and the Request saw an invalid Remote instead).
func TestReplyToAGoneRequester(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	started, gone, answered := make(chan struct{}), make(chan struct{}), make(chan struct{})
	srv := listen(t, cfmessageport.HandlerFunc(func(context.Context, *cfmessageport.Message) ([]byte, error) {
		defer close(answered)
		close(started)
		<-gone
		return make([]byte, 100<<10), nil // out-of-line, from a region
	}), nil)
	r, err := cfmessageport.Dial(ctx, srv.Name())
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { _, err := r.Request(ctx, msgEcho, nil); errc <- err }()
	<-started
	require.NoError(t, r.Close())
	require.ErrorIs(t, <-errc, cfmessageport.ErrBecameInvalid)
	close(gone)
	<-answered
}

// Listen and Dial fail with typed errors and leave nothing behind.
func TestListenAndDialFailures(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	srv := listen(t, echo, nil)
	_, err := cfmessageport.Listen(srv.Name(), echo, nil)
	if runtime.GOOS == "darwin" {
		// Today's launchd is not yet seen: any refusal of a name this process serves passes.
		var be *bootstrap.Error
		require.ErrorAs(t, err, &be, "the name is served already")
	} else {
		require.ErrorIs(t, err, bootstrap.ErrServiceActive, "the name is served already")
	}
	_, err = cfmessageport.Listen("a\x00b", echo, nil)
	require.ErrorIs(t, err, sandboxcheck.ErrNameHasNUL)
	_, err = cfmessageport.Dial(ctx, uniqueName(t))
	require.ErrorIs(t, err, bootstrap.ErrUnknownService)
	require.NotErrorIs(t, err, cfmessageport.ErrInvalid, "no live server is one cause, not two")
}
