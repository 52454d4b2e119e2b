//go:build linux

package notify_test

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/notify"
)

// A post can complete a watcher's account without any delivery to it: the center drops its
// message because the port it shares with the process's other subscriptions is full of theirs.
// The watching child of TestSixteenWatchersInFourProcesses must see that: its wait once woke
// only at deliveries, slept through such a last drop until its limit, and the parent, which
// waits less, failed with "no line from the child" (about 1 run in 25 on a loaded machine,
// where the child is still handling the last posts when "final" arrives).
func TestWaitAccountedSeesADropThatWakesNothing(t *testing.T) {
	name := uniqueName(t)
	a, err := notify.Watch(ctxFor(t), name)
	require.NoError(t, err)
	defer a.Cancel()
	b, err := notify.Watch(ctxFor(t), name)
	require.NoError(t, err)
	defer b.Cancel()
	wa := newWatcher(a)
	require.NoError(t, a.Suspend())

	// b's messages fill the shared port: one held by the receiver, qlimit (16) queued.
	release := notify.HoldDispatch()
	held := true
	defer func() {
		if held {
			release()
		}
	}()
	const posts = 17
	// The first alone, until the receiver has taken it (and waits to hand it out): posted with
	// the rest, on a loaded machine the receiver took it only after the last had found the
	// queue full and been dropped (15 queued, not 16).
	require.NoError(t, notify.Post(name))
	waitHandled(t, b.Registration, 1)
	testproc.Eventually(t, "the receiver took the first message", 20*time.Second, func() bool {
		st, err := a.Port().Right().Status()
		require.NoError(t, err)
		return st.MessageCount == 0
	})
	for range posts - 1 {
		require.NoError(t, notify.Post(name))
	}
	waitHandled(t, a.Registration, posts)
	waitHandled(t, b.Registration, posts)
	st, err := a.Port().Right().Status()
	require.NoError(t, err)
	require.Equal(t, 16, int(st.MessageCount), "the port is full of b's messages")

	// After the wait's first look, a's pending post is dropped at Resume: a's account reaches
	// 1 (one post while suspended), and nothing is ever delivered to a.
	var once sync.Once
	afterLook = func() {
		once.Do(func() {
			require.NoError(t, a.Resume())
			require.Equal(t, uint64(1), notify.DroppedForToken(a.Token()))
		})
	}
	defer func() { afterLook = nil }()
	require.True(t, waitAccounted([]*watcher{wa}, 1, stallLimit), "the wait saw the drop: %s", diagWatcher(wa))
	release()
	held = false
	wa.mu.Lock()
	defer wa.mu.Unlock()
	require.Zero(t, wa.deliveries, "a had no delivery: only the drop accounted for its post")
}
