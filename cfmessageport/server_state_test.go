package cfmessageport_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/stretchr/testify/require"
)

// recordingHandler is a slog.Handler that keeps every record.
type recordingHandler struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *recordingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordingHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}
func (h *recordingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordingHandler) WithGroup(string) slog.Handler      { return h }

// find returns the attributes of the records logged with msg.
func (h *recordingHandler) find(msg string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.records {
		if r.Message != msg {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
		out = append(out, attrs)
	}
	return out
}

func TestNilHandlerRefused(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	name := uniqueName(t)
	_, err := cfmessageport.Listen(name, nil, nil)
	require.ErrorIs(t, err, cfmessageport.ErrNilHandler)
	_, err = cfmessageport.ListenPair(name, nil, nil)
	require.ErrorIs(t, err, cfmessageport.ErrNilHandler)
	_, err = bootstrap.LookUp(ctx, name)
	require.ErrorIs(t, err, bootstrap.ErrUnknownService, "nothing was registered")
	srv := listen(t, echo, nil)
	_, err = cfmessageport.DialPair(ctx, srv.Name(), nil, nil)
	require.ErrorIs(t, err, cfmessageport.ErrNilHandler)
}

// A handler's error and a handler's panic each give the requester CF's "no data" reply and are
// logged, the panic with its stack.
func TestHandlerFailuresAreLogged(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	logs := &recordingHandler{}
	srv := listen(t, cfmessageport.HandlerFunc(func(_ context.Context, req *cfmessageport.Message) ([]byte, error) {
		switch string(req.Data) {
		case "fail":
			return []byte("ignored"), errors.New("the handler failed")
		case "panic":
			panic("the handler panicked")
		}
		return req.Data, nil
	}), &cfmessageport.ServerOptions{ErrorLog: slog.New(logs)})
	r := dial(t, ctx, srv.Name())

	got, err := r.Request(ctx, 7, []byte("fail"))
	require.NoError(t, err)
	require.Empty(t, got)
	failed := logs.find("cfmessageport: handler error")
	require.Len(t, failed, 1)
	require.Equal(t, "the handler failed", failed[0]["error"])
	require.Equal(t, "7", failed[0]["msgid"])
	require.Equal(t, srv.Name(), failed[0]["service"])

	got, err = r.Request(ctx, 8, []byte("panic"))
	require.NoError(t, err)
	require.Empty(t, got)
	panicked := logs.find("cfmessageport: handler panicked")
	require.Len(t, panicked, 1)
	require.Equal(t, "the handler panicked", panicked[0]["panic"])
	require.Contains(t, panicked[0]["stack"], "server_state_test.go", "the stack names the handler")

	got, err = r.Request(ctx, 9, []byte("still serving"))
	require.NoError(t, err)
	require.Equal(t, "still serving", string(got))
}

// Without an ErrorLog, the server logs to slog.Default().
func TestErrorLogDefaultsToSlogDefault(t *testing.T) {
	logs := &recordingHandler{}
	prev := slog.Default()
	slog.SetDefault(slog.New(logs))
	t.Cleanup(func() { slog.SetDefault(prev) })
	ctx := ctxTimeout(t, 10*time.Second)
	srv := listen(t, cfmessageport.HandlerFunc(func(context.Context, *cfmessageport.Message) ([]byte, error) {
		return nil, errors.New("logged by default")
	}), nil)
	_, err := dial(t, ctx, srv.Name()).Request(ctx, 1, nil)
	require.NoError(t, err)
	require.Len(t, logs.find("cfmessageport: handler error"), 1)
}

// Close cancels the handlers' context, waits for them, and fails the requests still queued at
// once; the server then reports ErrServerClosed.
func TestCloseCancelsHandlers(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	started := make(chan struct{}, 1)
	var sawErr error
	srv, err := cfmessageport.Listen(uniqueName(t), cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done() // a slow handler that honours its context
		sawErr = ctx.Err()
		return nil, ctx.Err()
	}), &cfmessageport.ServerOptions{ErrorLog: slog.New(&recordingHandler{})})
	require.NoError(t, err)
	r := dial(t, ctx, srv.Name())
	errs := make(chan error, 2)
	go func() { _, err := r.Request(ctx, 1, nil); errs <- err }()
	<-started
	go func() { _, err := r.Request(ctx, 2, nil); errs <- err }() // queued behind the first
	require.Eventually(t, func() bool { return cfmessageport.ServerQueued(srv) == 1 }, 10*time.Second,
		time.Millisecond, "the second request is queued")

	closed := make(chan error, 1)
	go func() { closed <- srv.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited 5 s for a handler waiting on its context")
	}
	require.ErrorIs(t, sawErr, context.Canceled)
	for range 2 {
		select {
		case err := <-errs:
			// The first gets its "no data" reply or the service's end; the queued one the end.
			if err != nil {
				require.ErrorIs(t, err, cfmessageport.ErrBecameInvalid)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a request outlived Close by 5 s")
		}
	}
	<-srv.Done()
	require.ErrorIs(t, srv.Err(), cfmessageport.ErrServerClosed)
	require.NoError(t, srv.Close(), "twice")
}

// Shutdown answers what was queued before it, withdraws the name, waits for the handlers, and
// gives up with ctx's error when ctx ends first (Close then ends the server).
func TestShutdown(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	srv, err := cfmessageport.Listen(uniqueName(t), cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
		started <- struct{}{}
		<-release
		return req.Data, nil
	}), nil)
	require.NoError(t, err)
	r := dial(t, ctx, srv.Name())
	replies := make(chan string, 2)
	for _, data := range []string{"first", "queued"} {
		go func() {
			got, err := r.Request(ctx, 1, []byte(data))
			if err != nil {
				got = []byte(err.Error())
			}
			replies <- string(got)
		}()
		if data == "first" {
			<-started
		}
	}
	require.Eventually(t, func() bool { return cfmessageport.ServerQueued(srv) == 1 }, 10*time.Second,
		time.Millisecond, "the second request is queued")

	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err = srv.Shutdown(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "a handler is still running")
	require.NoError(t, srv.Err(), "still serving what was queued")

	close(release)
	require.NoError(t, srv.Shutdown(ctx))
	got := []string{<-replies, <-replies}
	require.ElementsMatch(t, []string{"first", "queued"}, got, "both answered")
	require.ErrorIs(t, srv.Err(), cfmessageport.ErrServerClosed)
	_, err = bootstrap.LookUp(ctx, srv.Name())
	if err == nil {
		// launchd withdraws asynchronously on macOS; the emulation at once.
		require.Eventually(t, func() bool { _, err := bootstrap.LookUp(ctx, srv.Name()); return err != nil }, 5*time.Second, 50*time.Millisecond)
	}
	_, err = r.Request(ctx, 1, []byte("late"))
	require.Error(t, err, "no one serves the name any more")
	require.True(t, strings.Contains(err.Error(), srv.Name()))
	require.NoError(t, srv.Close())
}
