//go:build linux

package cfmessageport_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/cfport"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/stretchr/testify/require"
)

// Ending a request that waits in CF's CFMessagePortSendRequest, and the turns of the requests of
// one name (viacf.go, internal/cfport's Remote).

// Review finding (issue 21, "the Go API, errors and behaviour are the same as on macOS"; issue 17
// CF item 4): on the CoreFoundation path, Remote.Close did not return while a request waited for
// a reply that does not come: CF's call was left running with a timeout of 11 days, holding
// cfport's lock that Close takes. Close now ends the call as CF ends the wait of a remote that
// became invalid (CFMessagePortInvalidate, then CFRunLoopStop of the waiting thread's run loop).
// The native path's Close returns at once.
//
// The handler here answers only when the test ends. The 10-second bound is a deadlock guard,
// not a measure of speed: Close has nothing to wait for.
func TestCloseDoesNotWaitForTheCFCall(t *testing.T) {
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

// useCF selects the CoreFoundation path for the test.
func useCF(t *testing.T) {
	was := cfmessageport.SetViaCoreFoundation(true)
	t.Cleanup(func() { cfmessageport.SetViaCoreFoundation(was) })
}

// A request cancelled by its context while it waits in CF ends CF's call at once, not at its
// 11-day timeout (which kept a goroutine and a locked OS thread, and, with the requests of a name
// taking turns, would hold up every later request of the name). The Remote and another Remote of
// the name stay usable: CF's remote, invalidated to end the wait, is looked up again.
//
// The 10-second bound is a deadlock guard, not a measure of speed.
func TestCoreFoundationCancelEndsTheCFCall(t *testing.T) {
	useCF(t)
	name := uniqueName(t)
	arrived := make(chan struct{}, 1)
	// The handler holds each "wait" request until the test releases it.
	release := map[string]chan struct{}{"wait": make(chan struct{}), "wait again": make(chan struct{})}
	var releaseOnce [2]sync.Once
	free := func(i int, what string) { releaseOnce[i].Do(func() { close(release[what]) }) }
	srv, err := cfmessageport.Listen(name, cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
		if hold, ok := release[string(req.Data)]; ok {
			arrived <- struct{}{}
			<-hold
		}
		return req.Data, nil
	}), nil)
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	t.Cleanup(func() { free(0, "wait"); free(1, "wait again") })
	returned := make(chan int32, 1)
	libsystemdouble.OnSendRequestReturn = func(n string, status int32) {
		if n == name {
			returned <- status
		}
	}
	t.Cleanup(func() { libsystemdouble.OnSendRequestReturn = nil })
	ctx := ctxTimeout(t, 10*time.Second)
	r, err := cfmessageport.Dial(ctx, name)
	require.NoError(t, err)
	defer r.Close()
	other, err := cfmessageport.Dial(ctx, name)
	require.NoError(t, err)
	defer other.Close()

	wctx, cancel := context.WithCancel(context.Background()) // no deadline
	errs := make(chan error, 1)
	go func() { _, err := r.Request(wctx, 1, []byte("wait")); errs <- err }()
	<-arrived
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
	select {
	case st := <-returned:
		require.Equal(t, int32(cfmessageport.ErrBecameInvalid), st, "CF's wait ended as for a remote that became invalid")
	case <-time.After(10 * time.Second):
		t.Fatal("CF's call still waits: a cancelled request's call was left to its 11-day timeout")
	}
	free(0, "wait")
	for _, rem := range []*cfmessageport.Remote{r, other} {
		got, err := rem.Request(ctx, 1, []byte("after"))
		require.NoError(t, err)
		require.Equal(t, "after", string(got))
		require.Equal(t, int32(0), <-returned)
	}

	// Once the service is gone, the look-up again fails, and the Remote learns it died.
	wctx, cancel = context.WithCancel(context.Background())
	go func() { _, err := r.Request(wctx, 1, []byte("wait again")); errs <- err }()
	<-arrived
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
	require.Equal(t, int32(cfmessageport.ErrBecameInvalid), <-returned)
	free(1, "wait again")
	require.NoError(t, srv.Close())
	_, err = r.Request(ctx, 1, []byte("gone"))
	require.ErrorIs(t, err, cfmessageport.ErrInvalid)
	select {
	case <-r.Invalidated():
	default:
		t.Fatal("the Remote does not know the service died")
	}
}

// Review finding (issue 17 CF, macOS behaviour read in CF): CF makes one remote per name in a
// process (__CFMessagePortCreateRemote's cache) with one reply port, and each thread waiting in
// CFMessagePortSendRequest runs its own run loop on it; a reply received by another thread's run
// loop is stored (_replies) without waking the thread it is for, which then waits until its
// timeout. So the requests of a name take turns, from one Remote or from several.
//
// The first request's handler holds its reply until the second request either entered CF's
// SendRequest (the double's count: two calls at once, what must not happen) or waits for its turn
// (cfport.OnQueued); then the double must have seen at most one call at a time.
func TestCoreFoundationRequestsOfANameTakeTurns(t *testing.T) {
	useCF(t)
	for _, tc := range []struct {
		what       string
		sameRemote bool
	}{
		{"two Remotes of the name", false},
		{"one Remote", true},
	} {
		t.Run(tc.what, func(t *testing.T) {
			name := uniqueName(t)
			second := make(chan struct{})
			var once sync.Once
			libsystemdouble.OnSendRequest = func(n string, inFlight int) {
				if n == name && inFlight > 1 {
					once.Do(func() { close(second) })
				}
			}
			cfport.OnQueued = func(n string) {
				if n == name {
					once.Do(func() { close(second) })
				}
			}
			t.Cleanup(func() { libsystemdouble.OnSendRequest, cfport.OnQueued = nil, nil })
			t.Cleanup(func() { once.Do(func() { close(second) }) })
			first := make(chan struct{}, 1)
			srv, err := cfmessageport.Listen(name, cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
				if string(req.Data) == "first" {
					first <- struct{}{}
					<-second
				}
				return req.Data, nil
			}), nil)
			require.NoError(t, err)
			t.Cleanup(func() { srv.Close() })
			ctx := ctxTimeout(t, 10*time.Second)
			r1, err := cfmessageport.Dial(ctx, name)
			require.NoError(t, err)
			defer r1.Close()
			r2 := r1
			if !tc.sameRemote {
				r2, err = cfmessageport.Dial(ctx, name)
				require.NoError(t, err)
				defer r2.Close()
			}
			replies := make(chan string, 2)
			request := func(r *cfmessageport.Remote, data string) {
				got, err := r.Request(ctx, 1, []byte(data))
				if err != nil {
					replies <- err.Error()
					return
				}
				replies <- string(got)
			}
			go request(r1, "first")
			<-first // it waits for its reply in CF
			go request(r2, "second")
			require.ElementsMatch(t, []string{"first", "second"}, []string{<-replies, <-replies})
			_, most := libsystemdouble.SendRequestsInFlight(name)
			require.Equal(t, 1, most, "CFMessagePortSendRequest calls at once on the remote of one name")
		})
	}
}
