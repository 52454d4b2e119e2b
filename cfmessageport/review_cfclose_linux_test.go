//go:build linux

package cfmessageport_test

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport"
	"github.com/stretchr/testify/require"
)

// Review finding (issue 21, "the Go API, errors and behaviour are the same as on macOS"; issue 17
// CF item 4): on the CoreFoundation path, Remote.Close does not return while a request waits for
// a reply that does not come. viacf.go's requestCF leaves CF's call running on its own goroutine
// with a timeout of farFuture (11 days) when the context has no deadline, and cfRemote.close calls
// cfport.Remote.Close, which takes the write lock that the call in flight holds for reading
// (internal/cfport/port.go, Request and Close). The native path's Close returns at once.
//
// The handler here answers only when the test ends. The 10-second bound is a deadlock guard,
// not a measure of speed: Close has nothing to wait for.
func TestReviewCloseDoesNotWaitForTheCFCall(t *testing.T) {
	paths(t, func(t *testing.T, viaCF bool) {
		name := uniqueName(t)
		arrived := make(chan struct{}, 1)
		release := make(chan struct{})
		srv, err := cfmessageport.Listen(name, cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
			arrived <- struct{}{}
			<-release
			return req.Data, nil
		}), nil)
		require.NoError(t, err)
		t.Cleanup(func() { srv.Close() })
		r, err := cfmessageport.Dial(ctxTimeout(t, 10*time.Second), name)
		require.NoError(t, err)
		errs := make(chan error, 1)
		go func() {
			_, err := r.Request(context.Background(), 1, []byte("no deadline")) // as most callers do
			errs <- err
		}()
		<-arrived
		closed := make(chan error, 1)
		go func() { closed <- r.Close() }()
		t.Cleanup(func() { <-closed })
		t.Cleanup(func() { close(release) })
		require.ErrorIs(t, <-errs, cfmessageport.ErrBecameInvalid)
		select {
		case err := <-closed:
			closed <- err
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("Remote.Close is still blocked: it waits for CF's call, whose timeout is 11 days")
		}
	})
}
