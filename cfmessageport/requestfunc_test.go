package cfmessageport_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/stretchr/testify/require"
)

// RequestFunc hands read the reply, inline or out of line, and returns read's error.
func TestRequestFunc(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 30*time.Second)
	srv := listen(t, echo, nil)
	r := dial(t, ctx, srv.Name())
	for _, n := range []int{0, 7, 4000, 4001, 64 << 10, 4 << 20} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*13 + n)
		}
		calls := 0
		err := r.RequestFunc(ctx, msgEcho, data, func(reply []byte) error {
			calls++
			if !bytes.Equal(reply, data) {
				return errors.New("the reply differs")
			}
			return nil
		})
		require.NoError(t, err, "%d bytes", n)
		require.Equal(t, 1, calls)
	}
	errStop := errors.New("read stops here")
	require.ErrorIs(t, r.RequestFunc(ctx, msgEcho, bytes.Repeat([]byte("x"), 5000),
		func([]byte) error { return errStop }), errStop)

	// A request that fails never calls read.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	err := r.RequestFunc(short, msgSleep, []byte("300"), func([]byte) error {
		t.Error("read called for a failed request")
		return nil
	})
	require.ErrorIs(t, err, cfmessageport.ErrReceiveTimeout)
}

// Out-of-line replies give their memory back whichever way they are read, and also when they
// arrive for requesters that gave up or are delivered by another requester.
func TestOutOfLineRepliesReleaseTheirMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts the emulation's mappings in /proc/self/maps")
	}
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 60*time.Second)
	reply := bytes.Repeat([]byte("r"), 64<<10)
	srv := listen(t, cfmessageport.HandlerFunc(func(_ context.Context, req *cfmessageport.Message) ([]byte, error) {
		time.Sleep(time.Duration(req.Data[0]) * 100 * time.Microsecond)
		return reply, nil
	}), &cfmessageport.ServerOptions{Concurrency: 8})
	r := dial(t, ctx, srv.Name())
	before := cfmessageport.OOLMapped()

	for range 50 {
		got, err := r.Request(ctx, msgEcho, []byte{0})
		require.NoError(t, err)
		require.Len(t, got, len(reply))
		require.NoError(t, r.RequestFunc(ctx, msgEcho, []byte{0}, func(b []byte) error {
			require.Len(t, b, len(reply))
			return nil
		}))
	}

	// Eight requesters at once with deadlines shorter than some replies take: one receives and
	// delivers to the others, and some replies find their requester gone.
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for range 100 {
				rctx, cancel := context.WithTimeout(ctx, time.Duration(1+rng.IntN(4))*time.Millisecond)
				delay := []byte{byte(rng.IntN(60))}
				if rng.IntN(2) == 0 {
					_, _ = r.Request(rctx, msgEcho, delay)
				} else {
					_ = r.RequestFunc(rctx, msgEcho, delay, func([]byte) error { return nil })
				}
				cancel()
			}
		})
	}
	wg.Wait()
	// Replies still on their way are dropped as they come.
	testproc.Eventually(t, "every out-of-line reply is unmapped", 10*time.Second, func() bool {
		return cfmessageport.OOLMapped() <= before
	})
}

// A connection lends its replies the same way, in both directions.
func TestConnRequestFunc(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	l, err := cfmessageport.ListenPair(uniqueName(t), echo, nil)
	require.NoError(t, err)
	defer l.Close()
	client, err := cfmessageport.DialPair(ctx, l.Name(), echo, nil)
	require.NoError(t, err)
	defer client.Close()
	server, err := l.Accept(ctx)
	require.NoError(t, err)
	defer server.Close()
	data := bytes.Repeat([]byte("c"), 100<<10)
	for _, c := range []*cfmessageport.Conn{client, server} {
		var n int
		require.NoError(t, c.RequestFunc(ctx, msgEcho, data, func(reply []byte) error {
			if !bytes.Equal(reply, data) {
				return errors.New("the reply differs")
			}
			n = len(reply)
			return nil
		}))
		require.Equal(t, len(data), n)
	}
}
