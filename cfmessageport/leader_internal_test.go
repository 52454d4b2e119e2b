package cfmessageport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// gatedServer serves in this process; a request whose data starts with "gate" is answered only
// after release is closed, any other is echoed at once.
func gatedServer(t *testing.T) (name string, release func()) {
	t.Helper()
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	name = fmt.Sprintf("com.machport.cfmp.internal.%s.%d", t.Name(), os.Getpid())
	srv, err := Listen(name, HandlerFunc(func(_ context.Context, req *Message) ([]byte, error) {
		if bytes.HasPrefix(req.Data, []byte("gate")) {
			<-gate
		}
		return req.Data, nil
	}), &ServerOptions{Concurrency: 32})
	require.NoError(t, err)
	t.Cleanup(func() {
		release() // before Close, which waits for the handlers
		srv.Close()
	})
	return name, release
}

// waitFor polls cond, which runs with r.mu held, until it holds.
func waitFor(t *testing.T, r *Remote, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not so after 5 s: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// followers counts the requests waiting for another requester to deliver their replies.
func (r *Remote) followers() int {
	n := 0
	for _, w := range r.pending {
		if w.wake != nil && !w.done {
			n++
		}
	}
	return n
}

// The requester that receives for everyone is cancelled while others wait: one of them takes
// the receiving over, so their replies, which come only afterwards, still reach them; the
// cancelled request's late reply is dropped.
func TestCancelledLeaderHandsOverReceiving(t *testing.T) {
	leakcheck.Check(t)
	name, release := gatedServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := Dial(ctx, name)
	require.NoError(t, err)
	defer r.Close()

	leaderCtx, cancelLeader := context.WithCancel(ctx)
	leaderErr := make(chan error, 1)
	go func() { _, err := r.Request(leaderCtx, 1, []byte("gate leader")); leaderErr <- err }()
	waitFor(t, r, "the first request receives", func() bool { return r.receiving && len(r.pending) == 1 })

	const followers = 8
	type result struct {
		want, got []byte
		err       error
	}
	results := make(chan result, followers)
	for i := range followers {
		go func() {
			want := fmt.Appendf(nil, "gate follower %d", i)
			got, err := r.Request(ctx, 1, want)
			results <- result{want, got, err}
		}()
	}
	waitFor(t, r, "the others wait for the first to deliver", func() bool { return r.followers() == followers })

	cancelLeader()
	select {
	case err := <-leaderErr:
		require.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("the cancelled receiving request did not return")
	}
	waitFor(t, r, "a waiting request took the receiving over", func() bool { return r.receiving })

	release() // only now do the replies come, the cancelled request's too
	for range followers {
		select {
		case res := <-results:
			require.NoError(t, res.err)
			require.Equal(t, string(res.want), string(res.got))
		case <-time.After(10 * time.Second):
			t.Fatal("a reply was stranded: nobody received it")
		}
	}
	got, err := r.Request(ctx, 1, []byte("after"))
	require.NoError(t, err)
	require.Equal(t, "after", string(got))
	waitFor(t, r, "nothing is left waiting", func() bool { return len(r.pending) == 0 && !r.receiving })
}

// Close ends a request that waits in the receive itself without any deadline (which blocks a
// thread in the emulation, not Go's poller), and the requests waiting for it.
func TestCloseWakesTheReceivingRequest(t *testing.T) {
	leakcheck.Check(t)
	name, release := gatedServer(t)
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := Dial(ctx, name)
	require.NoError(t, err)

	errs := make(chan error, 3)
	go func() { _, err := r.Request(context.Background(), 1, []byte("gate")); errs <- err }()
	waitFor(t, r, "the request receives", func() bool { return r.receiving })
	for range 2 {
		go func() { _, err := r.Request(context.Background(), 1, []byte("gate")); errs <- err }()
	}
	waitFor(t, r, "two requests wait for it", func() bool { return r.followers() == 2 })
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	for range 3 {
		select {
		case err := <-errs:
			require.ErrorIs(t, err, ErrBecameInvalid, "each waited for its reply: CF's -5")
		case <-time.After(5 * time.Second):
			t.Fatal("a request outlives Close")
		}
	}
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Close does not return")
	}
}

// Many requesters at once, some with deadlines so short that they often expire while their
// request receives for the others: every request with time enough gets its own reply.
func TestShortDeadlinesAmongManyRequesters(t *testing.T) {
	leakcheck.Check(t)
	name := fmt.Sprintf("com.machport.cfmp.internal.%s.%d", t.Name(), os.Getpid())
	srv, err := Listen(name, HandlerFunc(func(_ context.Context, req *Message) ([]byte, error) {
		if len(req.Data) > 0 {
			time.Sleep(time.Duration(req.Data[0]%4) * time.Millisecond)
		}
		return req.Data, nil
	}), &ServerOptions{Concurrency: 8})
	require.NoError(t, err)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := Dial(ctx, name)
	require.NoError(t, err)
	defer r.Close()

	const goroutines = 24
	each := 100
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 2))
			for i := range each {
				data := fmt.Appendf(nil, "%c%d.%d", byte(rng.IntN(256)), g, i)
				if g%2 == 1 { // impatient: may give up while receiving for the others
					short, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(2000))*time.Microsecond)
					got, err := r.Request(short, 1, data)
					cancel()
					if err == nil && !bytes.Equal(got, data) {
						errs <- fmt.Errorf("goroutine %d: a reply does not match its request", g)
						return
					}
					if err != nil && !errors.Is(err, ErrReceiveTimeout) && !errors.Is(err, ErrSendTimeout) {
						errs <- fmt.Errorf("goroutine %d: %w", g, err)
						return
					}
					continue
				}
				got, err := r.Request(ctx, 1, data)
				if err != nil {
					errs <- fmt.Errorf("goroutine %d: %w", g, err)
					return
				}
				if !bytes.Equal(got, data) {
					errs <- fmt.Errorf("goroutine %d: a reply does not match its request", g)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	waitFor(t, r, "nothing is left waiting", func() bool { return len(r.pending) == 0 && !r.receiving })
}

// startEcho starts the test binary's echo service (role "serve", see main_test.go) in a child
// process and dials it.
func startEcho(t *testing.T, ctx context.Context) (*Remote, *testproc.Child) {
	t.Helper()
	name := testproc.UniqueName(t, "com.machport.cfmp.internal")
	c := testproc.Start(t, "serve", name)
	if line := c.Line(t); line != "ready" {
		t.Fatalf("the child says %q", line)
	}
	r, err := Dial(ctx, name)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	got, err := r.Request(ctx, 1, []byte("alive")) // msgid 1: echo
	require.NoError(t, err)
	require.Equal(t, "alive", string(got))
	return r, c
}

// With no request in flight nobody receives on the reply port, yet the service's death is
// noticed at once: the remote is invalidated and the next request fails as CF's -3.
func TestIdleRemoteNoticesKilledServer(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, c := startEcho(t, ctx)
	waitFor(t, r, "the remote is idle", func() bool { return !r.receiving && len(r.pending) == 0 })
	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-r.Invalidated():
	case <-time.After(2 * time.Second):
		t.Fatal("an idle remote did not notice its service's death")
	}
	_, err := r.Request(ctx, 1, []byte("x"))
	require.ErrorIs(t, err, ErrInvalid)
}

// The server is killed while a request without any deadline waits in the receive: it fails
// with ErrBecameInvalid at once.
func TestKilledServerEndsReceivingRequestWithoutDeadline(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, c := startEcho(t, ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := r.Request(context.Background(), 2, []byte("20000")) // msgid 2: sleep 20 s
		errc <- err
	}()
	waitFor(t, r, "the request receives", func() bool { return r.receiving })
	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
	select {
	case err := <-errc:
		require.ErrorIs(t, err, ErrBecameInvalid)
	case <-time.After(5 * time.Second):
		t.Fatal("the request still waits 5 s after the server was killed")
	}
}

// receivedOOLReply sends this process an out-of-line reply of conversation conv and receives
// it, as a leader would: the message still holds the mapped memory.
func receivedOOLReply(t *testing.T, conv int32) (*mach.Message, wire.Packet) {
	t.Helper()
	port, send, err := mach.NewPortWithSendRight(mach.PortOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { send.Close(); port.Close() })
	ctx := testproc.Context(t, 5*time.Second)
	var out mach.Message
	pk := wire.Packet{MsgID: 1, ConvID: -conv, Data: bytes.Repeat([]byte("o"), 8000)}
	require.NoError(t, pk.Encode(&out, mach.CopySendOf(send), mach.Port{}))
	require.NoError(t, mach.Send(ctx, &out))
	m := &mach.Message{}
	require.NoError(t, mach.Receive(ctx, port, m))
	p, err := wire.Decode(m, true)
	require.NoError(t, err)
	require.Len(t, m.Descriptors, 1, "out of line")
	return m, p
}

// OOLMapped counts the out-of-line regions this process has mapped, for the external tests too
// (Linux: the emulation's memfd mappings in /proc/self/maps, copies from Go memory and regions
// moved whole; 0 elsewhere).
var OOLMapped = oolMapped

func oolMapped() int {
	maps, _ := os.ReadFile("/proc/self/maps")
	return bytes.Count(maps, []byte("memfd:machport-ool")) + bytes.Count(maps, []byte("memfd:machport-region"))
}

// A reply delivered to a requester that has just stopped waiting is released, not left mapped:
// the window between the leader taking the requester out of pending and handing it the reply.
func TestDeliverToALeftRequesterReleasesTheReply(t *testing.T) {
	leakcheck.Check(t)
	m, p := receivedOOLReply(t, 7)
	before := oolMapped()

	r := &Remote{pending: map[int32]*waiter{}}
	w := &waiter{left: true} // as leave leaves it, after the leader took it out of pending
	r.pending[7] = w
	r.deliver(7, m, p)
	require.False(t, w.done, "nothing is delivered to a requester that left")
	if runtime.GOOS == "linux" {
		require.Equal(t, before-1, oolMapped(), "the reply's memory was unmapped")
	}
	d := m.Descriptors[0].(*mach.OOLDescriptor)
	require.Nil(t, d.Region, "the region was taken from the message")
	require.NoError(t, m.Destroy())
}

// A reply delivered to a request whose send then fails is released with the request.
func TestAbandonReleasesADeliveredReply(t *testing.T) {
	leakcheck.Check(t)
	m, p := receivedOOLReply(t, 9)
	before := oolMapped()

	r := &Remote{pending: map[int32]*waiter{}}
	w := &waiter{} // still sending: in pending, not yet waiting
	r.pending[9] = w
	r.deliver(9, m, p)
	require.NoError(t, m.Destroy())
	require.True(t, w.done, "the early reply was delivered")
	require.Equal(t, before, oolMapped(), "its memory moved to the request")
	r.abandon(9, w) // the send failed
	if runtime.GOOS == "linux" {
		require.Equal(t, before-1, oolMapped(), "and is unmapped with it")
	}
}

// The service answers two requests and dies, and its death is noticed while the requester
// receiving for both holds its own reply and has not yet handed the receiving over: the other
// request's reply, queued before the death, still reaches it. (Failing every waiting requester
// at the death, as this did, dropped a reply CF would have delivered: CF's requester looks for
// its reply before it checks that the remote is valid, in CFMessagePortSendRequest.)
func TestReplyQueuedBeforeDeathIsHandedOver(t *testing.T) {
	leakcheck.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	port, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer port.Close()
	name := fmt.Sprintf("com.machport.cfmp.internal.%s.%d", t.Name(), os.Getpid())
	reg, err := bootstrap.Register(name, port, nil)
	require.NoError(t, err)
	defer reg.Close()
	r, err := Dial(ctx, name)
	require.NoError(t, err)
	defer r.Close()

	type result struct {
		data string
		err  error
	}
	results := make(chan result, 2)
	for _, data := range []string{"one", "two"} {
		go func() {
			got, err := r.Request(ctx, 1, []byte(data))
			results <- result{string(got), err}
		}()
	}
	waitFor(t, r, "one request receives, the other waits", func() bool { return r.receiving && r.followers() == 1 })
	requests := map[int32]*mach.Message{}
	for range 2 {
		m := new(mach.Message)
		require.NoError(t, mach.Receive(ctx, port, m))
		p, err := wire.Decode(m, false)
		require.NoError(t, err)
		requests[p.ConvID] = m
	}
	answer := func(conv int32) {
		m := requests[conv]
		p, err := wire.Decode(m, false)
		require.NoError(t, err)
		var out mach.Message
		rp := wire.Packet{MsgID: p.MsgID, ConvID: -conv, Data: p.Data}
		require.NoError(t, rp.Encode(&out, mach.MoveSendOnceOf(m.TakeRemote().(*mach.SendOnceRight)), mach.Port{}))
		require.NoError(t, mach.Send(ctx, &out))
		require.NoError(t, m.Destroy())
	}

	r.mu.Lock() // the receiving requester stops at r.mu once it has its own reply
	var leaderConv, followerConv int32
	for conv, w := range r.pending {
		if w.wake != nil {
			followerConv = conv
		} else {
			leaderConv = conv
		}
	}
	answer(leaderConv)
	for {
		st, err := r.reply.Status()
		require.NoError(t, err)
		if st.MessageCount == 0 {
			break // the leader took its reply
		}
		runtime.Gosched()
	}
	answer(followerConv)
	r.invalidate(true) // the death notification, before the leader hands the receiving over
	r.mu.Unlock()

	got := map[string]error{}
	for range 2 {
		res := <-results
		got[res.data] = res.err
	}
	require.Equal(t, map[string]error{"one": nil, "two": nil}, got)
}
