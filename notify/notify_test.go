package notify_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/notify"
)

func ctxFor(t testing.TB) context.Context { return testproc.Context(t, 30*time.Second) }

// warm makes what the platform keeps for the life of the process (the poller, the emulation's
// own ports, the center's posting socket; on macOS whatever libnotify sets up at its first
// registration) before a leak check starts counting.
func warm(t *testing.T) {
	leakcheck.WarmUp(t)
	const name = "com.machport.test.notify.warmup"
	require.NoError(t, notify.Post(name))
	for _, register := range []func() (*notify.Registration, error){
		func() (*notify.Registration, error) { return notify.RegisterCheck(name) },
		func() (*notify.Registration, error) { return notify.RegisterPort(name, nil) },
	} {
		reg, err := register()
		require.NoError(t, err)
		require.NoError(t, reg.Cancel())
	}
}

// A post reaches a subscription of the same process, once.
func TestWatchSeesPost(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	name := uniqueName(t)
	sub, err := notify.Watch(ctxFor(t), name)
	require.NoError(t, err)
	defer sub.Cancel()
	require.Equal(t, name, sub.Name())
	require.NoError(t, notify.Post(name))
	select {
	case d := <-sub.C():
		require.Equal(t, name, d.Name)
		require.Equal(t, sub.Token(), d.Token)
		require.False(t, d.Time.IsZero())
	case <-ctxFor(t).Done():
		t.Fatal("no delivery")
	}
	require.NoError(t, sub.Cancel())
	_, open := <-sub.C()
	require.False(t, open, "Cancel closes C")
}

// Subscriptions share one port and are told apart by token: a post of one name reaches its
// subscriptions and not the other name's.
func TestSubscriptionsShareOnePortAndDispatchByToken(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	a, b := uniqueName(t), uniqueName(t)
	sa1, err := notify.Watch(ctxFor(t), a)
	require.NoError(t, err)
	defer sa1.Cancel()
	sa2, err := notify.Watch(ctxFor(t), a)
	require.NoError(t, err)
	defer sa2.Cancel()
	sb, err := notify.Watch(ctxFor(t), b)
	require.NoError(t, err)
	defer sb.Cancel()
	require.Same(t, sa1.Port(), sb.Port(), "one port for the process")
	require.NotEqual(t, sa1.Token(), sa2.Token())

	require.NoError(t, notify.Post(a))
	for _, s := range []*notify.Subscription{sa1, sa2} {
		select {
		case d := <-s.C():
			require.Equal(t, s.Token(), d.Token)
		case <-ctxFor(t).Done():
			t.Fatal("no delivery")
		}
	}
	// b was not posted: a post of b now is the first thing its subscription sees.
	require.NoError(t, notify.Post(b))
	d := <-sb.C()
	require.Equal(t, b, d.Name)
	require.Zero(t, sb.Coalesced())
}

// A context that ends cancels the subscription and closes C.
func TestWatchEndsWithContext(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := notify.Watch(ctx, uniqueName(t))
	require.NoError(t, err)
	cancel()
	for range sub.C() {
	}
	require.False(t, sub.Valid(), "notify_is_valid_token: the token is gone")
}

// The state round trip: one process sets it, another reads it, and back.
func TestStateRoundTripAcrossProcesses(t *testing.T) {
	name := uniqueName(t)
	reg, err := notify.RegisterCheck(name)
	require.NoError(t, err)
	defer reg.Cancel()
	child := testproc.Start(t, "state", name)
	require.Equal(t, "ready", child.Line(t))

	require.NoError(t, reg.SetState(0xfeedface_00000001))
	child.Stdin.Write([]byte("get\n"))
	require.Equal(t, strconv.FormatUint(0xfeedface_00000001, 10), child.Line(t))

	child.Stdin.Write([]byte("set 18446744073709551615\n"))
	require.Equal(t, "set", child.Line(t))
	v, err := reg.State()
	require.NoError(t, err)
	require.Equal(t, uint64(1<<64-1), v)
}

// A post from another process reaches a subscription here, and a post from here reaches one in
// another process.
func TestCrossProcessPostAndWatch(t *testing.T) {
	name := uniqueName(t)
	sub, err := notify.Watch(ctxFor(t), name)
	require.NoError(t, err)
	defer sub.Cancel()

	poster := testproc.Start(t, "post", name)
	require.Equal(t, "ready", poster.Line(t))
	poster.Stdin.Write([]byte("post\n"))
	require.Equal(t, "posted", poster.Line(t))
	select {
	case d := <-sub.C():
		require.Equal(t, name, d.Name)
	case <-ctxFor(t).Done():
		t.Fatal("the other process's post did not arrive")
	}

	watcher := testproc.Start(t, "watch", name)
	require.True(t, strings.HasPrefix(watcher.Line(t), "ready"))
	require.NoError(t, sub.SetState(1))
	require.NoError(t, notify.Post(name))
	watcher.Stdin.Write([]byte("final 1\n"))
	f := strings.Fields(watcher.Line(t))
	require.Len(t, f, 7)
	require.Equal(t, "1", f[4], "the watcher read state 1 at a delivery after this process's post")
}

// Several posts before a Check give one true; the next Check, with no post between, is false.
func TestCheckCoalescesPosts(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	name := uniqueName(t)
	reg, err := notify.RegisterCheck(name)
	require.NoError(t, err)
	defer reg.Cancel()
	require.Nil(t, reg.Port())
	posted, err := reg.Check()
	require.NoError(t, err)
	require.True(t, posted, "the first Check of a token says true")
	posted, err = reg.Check()
	require.NoError(t, err)
	require.False(t, posted)
	for range 5 {
		require.NoError(t, notify.Post(name))
	}
	// A call that waits for the center's answer after the posts: on Linux a post has bumped the
	// name's generation before it returns; notifyd handles one client's requests in order, so
	// once it has answered this, the posts before it are done (if notify_set_state waits for its
	// reply, which is not verified on macOS: hence Eventually below).
	require.NoError(t, reg.SetState(5))
	testproc.Eventually(t, "a Check after the posts says true", 10*time.Second, func() bool {
		posted, err = reg.Check()
		return err == nil && posted
	})
	posted, err = reg.Check()
	require.NoError(t, err)
	require.False(t, posted, "five posts gave one true")
}

// RegisterPort with the Port of an earlier registration delivers both names there, by token;
// cancelling the last registration destroys the port, and the Port cannot be reused then.
func TestRegisterPortReuseAndCancelReleasesPort(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	before := leakcheck.Names(t)
	a, b := uniqueName(t), uniqueName(t)
	ra, err := notify.RegisterPort(a, nil)
	require.NoError(t, err)
	rb, err := notify.RegisterPort(b, ra.Port())
	require.NoError(t, err)
	require.Same(t, ra.Port(), rb.Port())
	require.Greater(t, leakcheck.Names(t), before, "the port is a name of this task")

	require.NoError(t, notify.Post(b))
	tok, err := rb.Port().Receive(ctxFor(t))
	require.NoError(t, err)
	require.Equal(t, rb.Token(), tok)

	require.NoError(t, ra.Cancel())
	_, err = ra.State()
	require.ErrorIs(t, err, notify.StatusInvalidToken)
	right := rb.Port().Right()
	_, err = mach.TypeOf(right.Name())
	require.NoError(t, err, "the port lives while a registration does")
	require.NoError(t, rb.Cancel())
	require.NoError(t, rb.Cancel(), "twice is fine")
	require.Equal(t, before, leakcheck.Names(t), "the last cancel destroyed the port")
	_, err = notify.RegisterPort(a, rb.Port())
	require.ErrorIs(t, err, notify.StatusInvalidPort)
}

// Each failure is an *Error whose cause is one Status sentinel.
func TestErrors(t *testing.T) {
	err := notify.Post("bad\x00name")
	var ne *notify.Error
	require.ErrorAs(t, err, &ne)
	require.Equal(t, "notify_post", ne.Op)
	require.ErrorIs(t, err, notify.StatusInvalidName)
	require.NotErrorIs(t, err, notify.StatusInvalidToken)

	reg, err := notify.RegisterCheck(uniqueName(t))
	require.NoError(t, err)
	require.NoError(t, reg.Cancel())
	for _, f := range []func() error{
		func() error { _, err := reg.Check(); return err },
		func() error { _, err := reg.State(); return err },
		func() error { return reg.SetState(1) },
		reg.Suspend, reg.Resume,
	} {
		err := f()
		require.ErrorIs(t, err, notify.StatusInvalidToken)
		require.True(t, errors.As(err, &ne))
		require.Equal(t, reg.Token(), ne.Token)
	}
	require.Contains(t, notify.StatusServerNotFound.Error(), "(9)")
}

// A context that is done while Watch registers cancels the subscription at once.
func TestWatchWithContextDoneDuringWatch(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	for range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		sub, err := notify.Watch(ctx, uniqueName(t))
		if err != nil {
			require.ErrorIs(t, err, context.Canceled)
			continue
		}
		for range sub.C() {
		}
	}
}
