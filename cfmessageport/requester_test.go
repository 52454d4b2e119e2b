package cfmessageport_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/stretchr/testify/require"
)

func init() {
	// request: dial the name, say ready, and wait for the reply to one request, forever.
	extraRoles["request"] = func(name string) error {
		ctx := context.Background()
		r, err := cfmessageport.Dial(ctx, name)
		if err != nil {
			return err
		}
		fmt.Println("ready")
		_, err = r.Request(ctx, msgEcho, []byte("wait"))
		return err
	}
}

// A handler waiting on its context learns that its requester went away: the requester's process
// was killed, or it closed its Remote (which destroys its reply port). The context's cause says
// so, and the server goes on serving.
func TestHandlerContextEndsWithItsRequester(t *testing.T) {
	for _, tc := range []struct {
		name string
		// request starts a request that waits for its reply, and returns how to make its
		// requester go away.
		request func(t *testing.T, ctx context.Context, name string) (goAway func())
	}{
		{"requester killed", func(t *testing.T, _ context.Context, name string) func() {
			c := startChild(t, "request", name)
			return func() {
				require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
				_ = c.Cmd.Wait()
			}
		}},
		{"requester's Remote closed", func(t *testing.T, ctx context.Context, name string) func() {
			r, err := cfmessageport.Dial(ctx, name)
			require.NoError(t, err)
			go func() { _, _ = r.Request(ctx, msgEcho, []byte("wait")) }()
			return func() { require.NoError(t, r.Close()) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx := ctxTimeout(t, 20*time.Second)
			started := make(chan struct{}, 1)
			causes := make(chan error, 1)
			srv := listen(t, cfmessageport.HandlerFunc(func(hctx context.Context, req *cfmessageport.Message) ([]byte, error) {
				if string(req.Data) != "wait" {
					return req.Data, nil
				}
				started <- struct{}{}
				select {
				case <-hctx.Done():
					causes <- context.Cause(hctx)
				case <-ctx.Done():
					causes <- ctx.Err()
				}
				return nil, nil
			}), &cfmessageport.ServerOptions{Concurrency: 2})
			goAway := tc.request(t, ctx, srv.Name())
			<-started
			goAway()
			select {
			case cause := <-causes:
				require.ErrorIs(t, cause, cfmessageport.ErrRequesterGone)
			case <-time.After(5 * time.Second):
				t.Fatal("the handler's context outlived its requester by 5 s")
			}
			got, err := dial(t, ctx, srv.Name()).Request(ctx, msgEcho, []byte("next"))
			require.NoError(t, err)
			require.Equal(t, "next", string(got))
		})
	}
}

// A handler that never looks at its context costs no watch, and one that does but whose
// requester stays gets its reply; both leave nothing behind.
func TestHandlerContextWatchIsReleased(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	srv := listen(t, cfmessageport.HandlerFunc(func(hctx context.Context, req *cfmessageport.Message) ([]byte, error) {
		if string(req.Data) == "look" {
			select {
			case <-hctx.Done():
				return nil, hctx.Err()
			default:
			}
			require.NoError(t, hctx.Err())
		}
		return req.Data, nil
	}), nil)
	r := dial(t, ctx, srv.Name())
	for i := range 200 {
		data := []byte("look")
		if i%2 == 1 {
			data = []byte("ignore")
		}
		got, err := r.Request(ctx, msgEcho, data)
		require.NoError(t, err)
		require.Equal(t, string(data), string(got))
	}
}

// Any number of Remotes of one service may be open in a process (their send rights share one
// name, and Mach keeps one dead-name request per name): every one learns of the server's death
// at once, idle or with a request waiting, whichever were closed before, and closing them in any
// order leaves nothing behind.
func TestManyRemotesOfOneService(t *testing.T) {
	for _, tc := range []struct {
		name       string
		closeFirst []int // Remotes closed before the server dies
	}{
		{"all open", nil},
		{"the first closed", []int{0}},
		{"the last closed", []int{3}},
		{"two closed", []int{2, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx := ctxTimeout(t, 20*time.Second)
			name := uniqueName(t)
			c := startChild(t, "serve", name)
			remotes := make([]*cfmessageport.Remote, 4)
			for i := range remotes {
				var err error
				remotes[i], err = cfmessageport.Dial(ctx, name)
				require.NoError(t, err)
				defer remotes[i].Close()
				got, err := remotes[i].Request(ctx, msgEcho, []byte("hi"))
				require.NoError(t, err)
				require.Equal(t, "hi", string(got))
			}
			closed := map[int]bool{}
			for _, i := range tc.closeFirst {
				require.NoError(t, remotes[i].Close())
				closed[i] = true
			}
			waiting := make(chan error, 1)
			for i, r := range remotes {
				if !closed[i] {
					go func() { _, err := r.Request(ctx, msgSleep, []byte("10000")); waiting <- err }()
					break // one Remote waits for a reply, the others are idle
				}
			}
			time.Sleep(100 * time.Millisecond) // let the request reach the server
			require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
			_ = c.Cmd.Wait()
			for i, r := range remotes {
				if closed[i] {
					continue
				}
				select {
				case <-r.Invalidated():
				case <-time.After(5 * time.Second):
					t.Fatalf("Remote %d did not learn of the server's death", i)
				}
			}
			select {
			case err := <-waiting:
				require.ErrorIs(t, err, cfmessageport.ErrBecameInvalid)
			case <-time.After(5 * time.Second):
				t.Fatal("the waiting request outlived the server by 5 s")
			}
		})
	}
}

// RequestFrom says who answered: the serving process's pid, inline and out of line.
func TestRequestFromNamesTheReplier(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	name := uniqueName(t)
	c := startChild(t, "serve", name)
	r := dial(t, ctx, name)
	for _, n := range []int{5, 64 << 10} {
		data := make([]byte, n)
		got, from, err := r.RequestFrom(ctx, msgEcho, data)
		require.NoError(t, err)
		require.Len(t, got, n)
		require.Equal(t, c.Cmd.Process.Pid, from.PID(), "%d bytes", n)
	}
}
