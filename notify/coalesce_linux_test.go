//go:build linux

package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/notify"
)

// Coalescing as notifyd does it, against the emulated center (and, through the double, the
// Darwin logic): these tests wait until the center has handled every post (notify.Handled),
// which only the emulation can tell.

// waitHandled waits until the center has handled n posts for reg.
func waitHandled(t *testing.T, reg *notify.Registration, n uint64) {
	testproc.Eventually(t, "the center handled the posts", 20*time.Second, func() bool {
		return notify.Handled(reg.Token()) >= n
	})
}

func requireDropped(t *testing.T, tok int32, n int) {
	require.Equal(t, uint64(n), notify.DroppedForToken(tok), "the center dropped what the full queue refused")
}

// Posts made while a port's queue is full are dropped, not queued: 16 messages wait at most,
// and every post is a message received, or a drop that a queued message stands for.
func TestPostsToAFullQueueCoalesce(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	name := uniqueName(t)
	reg, err := notify.RegisterPort(name, nil)
	require.NoError(t, err)
	defer reg.Cancel()
	const posts = 40
	for i := 1; i <= posts; i++ {
		require.NoError(t, reg.SetState(uint64(i)))
		require.NoError(t, notify.Post(name))
	}
	// Wait until the last post has been handled, then count what is queued.
	waitHandled(t, reg, posts)
	st, err := reg.Port().Right().Status()
	require.NoError(t, err)
	require.Equal(t, 16, int(st.QueueLimit), "notifyd's ports queue 16")
	require.Equal(t, 16, int(st.MessageCount), "the queue filled and stayed full: the rest was dropped")
	got := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 0)
		_, err := reg.Port().Receive(ctx)
		cancel()
		if err != nil {
			break
		}
		got++
	}
	require.Equal(t, 16, got)
	requireDropped(t, reg.Token(), posts-got)
	v, err := reg.State()
	require.NoError(t, err)
	require.Equal(t, uint64(posts), v, "a queued message stands for the dropped posts: the state says what happened")
}

// Suspended deliveries coalesce into one at Resume.
func TestSuspendResumeCoalesces(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	name := uniqueName(t)
	reg, err := notify.RegisterPort(name, nil)
	require.NoError(t, err)
	defer reg.Cancel()
	require.NoError(t, reg.Suspend())
	for range 3 {
		require.NoError(t, notify.Post(name))
	}
	waitHandled(t, reg, 3)
	st, err := reg.Port().Right().Status()
	require.NoError(t, err)
	require.Zero(t, st.MessageCount, "nothing is delivered while suspended")
	require.NoError(t, reg.Resume())
	tok, err := reg.Port().Receive(ctxFor(t))
	require.NoError(t, err)
	require.Equal(t, reg.Token(), tok)
	st, err = reg.Port().Right().Status()
	require.NoError(t, err)
	require.Zero(t, st.MessageCount, "three posts while suspended give one delivery")
}
