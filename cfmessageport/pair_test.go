package cfmessageport_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/stretchr/testify/require"
)

// Message ids of the pairing tests, beside the echo service's.
const (
	msgPairStart = 6 // one-way: the peer makes as many requests to the sender as the data says
	msgPairDone  = 7 // one-way: "ok <n>" or "fail: ..." after msgPairStart's requests
)

func init() {
	extraRoles["pairserve"] = runPairServer
	extraRoles["pairdial"] = runPairDialer
	extraRoles["inject"] = runInjector
}

// pairEcho answers the echo service's message ids, and for msgPairStart starts requests back to
// the sender of its own, reporting the outcome with msgPairDone.
func pairEcho(done func(conn *cfmessageport.Conn, result string)) cfmessageport.Handler {
	return cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
		switch req.MsgID {
		case msgPairStart:
			n, _ := strconv.Atoi(string(req.Data))
			go func(c *cfmessageport.Conn) {
				result := requestMany(c, n)
				_ = c.Send(context.Background(), msgPairDone, []byte(result))
			}(req.Conn)
			return nil, nil
		case msgPairDone:
			done(req.Conn, string(req.Data))
			return nil, nil
		}
		return echo.ServeMessage(ctx, req)
	})
}

// requestMany makes n echo requests of random sizes on c and checks every reply.
func requestMany(c *cfmessageport.Conn, n int) string {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range n {
		data := make([]byte, rand.IntN(5000))
		for j := range data {
			data[j] = byte(rand.Uint32())
		}
		got, err := c.Request(ctx, msgEcho, data)
		if err != nil {
			return fmt.Sprintf("fail: request %d: %v", i, err)
		}
		if !bytes.Equal(got, data) {
			return fmt.Sprintf("fail: request %d: the reply is not its request's", i)
		}
	}
	return fmt.Sprintf("ok %d", n)
}

// runPairServer accepts connections until stdin closes; each pings its client on demand.
func runPairServer(name string) error {
	l, err := cfmessageport.ListenPair(name, pairEcho(func(*cfmessageport.Conn, string) {}), nil)
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept(context.Background())
			if err != nil {
				return
			}
			fmt.Printf("accepted %s\n", c.LocalName())
		}
	}()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// runPairDialer pairs with the service name (names only when MACHPORT_TEST_PAIR_NAMES is set,
// with the names prefix MACHPORT_TEST_PAIR_PREFIX), prints its side's name or launchd's refusal,
// and serves until stdin closes.
func runPairDialer(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := &cfmessageport.PairOptions{NamesOnly: os.Getenv("MACHPORT_TEST_PAIR_NAMES") != "",
		Prefix: os.Getenv("MACHPORT_TEST_PAIR_PREFIX")}
	c, err := cfmessageport.DialPair(ctx, name, echo, opts)
	if err != nil {
		var be *bootstrap.Error
		if errors.As(err, &be) {
			fmt.Printf("refused: code %d\n", int32(be.Code))
			return nil
		}
		return err
	}
	defer c.Close()
	fmt.Printf("paired %q\n", c.LocalName())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// runInjector looks name up, a connection's name it has no part in, and sends what it can.
func runInjector(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cfmessageport.Dial(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	for range 5 {
		if err := r.Send(ctx, msgEcho, []byte("injected")); err != nil {
			return err
		}
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	defer rcancel()
	_, err = r.Request(rctx, msgEcho, []byte("injected"))
	fmt.Printf("request: %v\n", err != nil)
	return nil
}

// pairModes are the two handshakes: both peers are this library (a send right in the
// handshake, no names), or the names handshake CF peers speak.
var pairModes = []struct {
	name string
	opts cfmessageport.PairOptions
}{
	{"fast", cfmessageport.PairOptions{}},
	{"names", cfmessageport.PairOptions{NamesOnly: true}},
}

// doneBox collects the msgPairDone reports per connection.
type doneBox struct{ m sync.Map }

func (b *doneBox) ch(c *cfmessageport.Conn) chan string {
	v, _ := b.m.LoadOrStore(c, make(chan string, 1))
	return v.(chan string)
}

func (b *doneBox) handler() cfmessageport.Handler {
	return pairEcho(func(c *cfmessageport.Conn, result string) { b.ch(c) <- result })
}

// 16 clients each make 1,000 requests to a server in another process while the server makes
// 1,000 requests to each of them, all at once; every reply matches its request, and nothing
// leaks.
func TestPairBothDirectionsUnderLoad(t *testing.T) {
	perSide := 1000
	if raceEnabled {
		perSide = 100
	}
	for _, mode := range pairModes {
		t.Run(mode.name, func(t *testing.T) {
			leakcheck.Check(t)
			name := uniqueName(t)
			startChild(t, "pairserve", name)
			ctx := ctxTimeout(t, 2*time.Minute)
			var box doneBox
			var wg sync.WaitGroup
			errs := make(chan error, 16)
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					opts := mode.opts
					c, err := cfmessageport.DialPair(ctx, name, box.handler(), &opts)
					if err != nil {
						errs <- err
						return
					}
					defer c.Close()
					if mode.opts.NamesOnly == (c.LocalName() == "") {
						errs <- fmt.Errorf("local name %q in %s mode", c.LocalName(), mode.name)
						return
					}
					if err := exchangeBothWays(ctx, c, &box, perSide); err != nil {
						errs <- err
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
		})
	}
}

// The server process is killed: the client's connection ends at once (not at a timeout), its
// waiting request fails with ErrBecameInvalid, its name is withdrawn, and nothing leaks.
func TestPairServerKilled(t *testing.T) {
	for _, mode := range pairModes {
		t.Run(mode.name, func(t *testing.T) {
			leakcheck.Check(t)
			name := uniqueName(t)
			child := startChild(t, "pairserve", name)
			ctx := ctxTimeout(t, 30*time.Second)
			opts := mode.opts
			c, err := cfmessageport.DialPair(ctx, name, echo, &opts)
			require.NoError(t, err)
			defer c.Close()
			require.Equal(t, child.Cmd.Process.Pid, c.Peer().PID(), "the peer is pinned from the handshake")
			got, err := c.Request(ctx, msgEcho, []byte("hello"))
			require.NoError(t, err)
			require.Equal(t, "hello", string(got))

			start := killMidRequest(t, child, func() error { _, err := c.Request(ctx, msgSleep, []byte("20000")); return err })
			requirePeerGone(t, ctx, c, start)
		})
	}
}

// The client process is killed while the server waits on it: the server's connection ends at
// once, its request fails with ErrBecameInvalid, its name is withdrawn, and the listener goes on.
func TestPairClientKilled(t *testing.T) {
	for _, mode := range pairModes {
		t.Run(mode.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx := ctxTimeout(t, 30*time.Second)
			l, err := cfmessageport.ListenPair(uniqueName(t), echo, nil)
			require.NoError(t, err)
			defer l.Close()
			var env []string
			if mode.opts.NamesOnly {
				env = append(env, "MACHPORT_TEST_PAIR_NAMES=1")
			}
			child := testproc.Start(t, "pairdial", l.Name(), env...)
			line := child.Line(t)
			require.True(t, strings.HasPrefix(line, "paired "), line)
			c, err := l.Accept(ctx)
			require.NoError(t, err)
			defer c.Close()
			require.Equal(t, child.Cmd.Process.Pid, c.Peer().PID())
			require.Equal(t, mode.opts.NamesOnly, c.LocalName() != "")

			start := killMidRequest(t, child, func() error { _, err := c.Request(ctx, msgSleep, []byte("20000")); return err })
			requirePeerGone(t, ctx, c, start)
		})
	}
}

// Closing either side ends the other at once, with ErrPeerClosed there and ErrConnClosed here.
func TestPairCloseEndsThePeer(t *testing.T) {
	for _, mode := range pairModes {
		t.Run(mode.name, func(t *testing.T) {
			leakcheck.Check(t)
			ctx := ctxTimeout(t, 10*time.Second)
			l, err := cfmessageport.ListenPair(uniqueName(t), echo, nil)
			require.NoError(t, err)
			defer l.Close()
			opts := mode.opts
			client, err := cfmessageport.DialPair(ctx, l.Name(), echo, &opts)
			require.NoError(t, err)
			server, err := l.Accept(ctx)
			require.NoError(t, err)
			require.Nil(t, client.Err())
			got, err := server.Request(ctx, msgEcho, []byte("from the server"))
			require.NoError(t, err)
			require.Equal(t, "from the server", string(got))
			got, err = client.Request(ctx, msgEcho, []byte("from the client"))
			require.NoError(t, err)
			require.Equal(t, "from the client", string(got))

			require.NoError(t, server.Close())
			require.ErrorIs(t, server.Err(), cfmessageport.ErrConnClosed)
			select {
			case <-client.Done():
				require.ErrorIs(t, client.Err(), cfmessageport.ErrPeerClosed)
			case <-time.After(time.Second):
				t.Fatal("the client did not see the server close")
			}
			require.NoError(t, client.Close())
			require.NoError(t, client.Close())
		})
	}
}

// A third process that looks the connection's name up and sends to it is ignored: its messages
// are dropped and counted, the handler never sees them, and the connection goes on.
func TestPairInjectionDropped(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	name := uniqueName(t)
	startChild(t, "pairserve", name)
	var seen atomic.Int64
	h := cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
		seen.Add(1)
		return req.Data, nil
	})
	c, err := cfmessageport.DialPair(ctx, name, h, &cfmessageport.PairOptions{NamesOnly: true})
	require.NoError(t, err)
	defer c.Close()
	require.NotEmpty(t, c.LocalName())

	injector := testproc.Start(t, "inject", c.LocalName())
	require.Equal(t, "request: true", injector.Line(t), "the injected request got no reply")
	require.Eventually(t, func() bool { return c.Dropped() == 6 }, 5*time.Second, 10*time.Millisecond,
		"dropped %d of 6", c.Dropped())
	require.Zero(t, seen.Load(), "the handler saw an injected message")
	got, err := c.Request(ctx, msgEcho, []byte("still here"))
	require.NoError(t, err)
	require.Equal(t, "still here", string(got))
	require.Nil(t, c.Err())
}

// A service that does not pair refuses: a plain server drops the fast handshake and answers the
// names one with something that is not a new name; a listener with a full backlog refuses too.
func TestPairRefused(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	plain := listen(t, echo, nil)
	_, err := cfmessageport.DialPair(ctx, plain.Name(), echo, nil)
	require.ErrorIs(t, err, cfmessageport.ErrPairRefused)
	require.Equal(t, uint64(1), plain.Dropped(), "the fast handshake is dropped as CF drops it")

	for _, mode := range pairModes {
		t.Run(mode.name, func(t *testing.T) {
			leakcheck.Check(t)
			l, err := cfmessageport.ListenPair(uniqueName(t), echo, &cfmessageport.PairOptions{Backlog: 1})
			require.NoError(t, err)
			defer l.Close()
			opts := mode.opts
			first, err := cfmessageport.DialPair(ctx, l.Name(), echo, &opts)
			require.NoError(t, err)
			defer first.Close()
			_, err = cfmessageport.DialPair(ctx, l.Name(), echo, &opts)
			require.ErrorIs(t, err, cfmessageport.ErrPairRefused)
			c, err := l.Accept(ctx)
			require.NoError(t, err)
			defer c.Close()
			got, err := first.Request(ctx, msgEcho, []byte("accepted"))
			require.NoError(t, err)
			require.Equal(t, "accepted", string(got))
		})
	}
}

// A listener answers plain requests too, and closing it closes the connections not accepted.
func TestPairListenerPlainRequestsAndClose(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := cfmessageport.ListenPair(uniqueName(t), echo, nil)
	require.NoError(t, err)
	r := dial(t, ctx, l.Name())
	got, err := r.Request(ctx, msgEcho, []byte("plain"))
	require.NoError(t, err)
	require.Equal(t, "plain", string(got))

	pending, err := cfmessageport.DialPair(ctx, l.Name(), echo, nil)
	require.NoError(t, err)
	defer pending.Close()
	require.NoError(t, l.Close())
	select {
	case <-pending.Done():
	case <-time.After(time.Second):
		t.Fatal("a connection never accepted outlived its listener")
	}
	_, err = l.Accept(ctx)
	require.ErrorIs(t, err, cfmessageport.ErrInvalid)
}

// requirePeerGone requires that c end within a second of start with ErrPeerClosed, fail later
// requests with ErrInvalid, and, once closed, have withdrawn its name.
func requirePeerGone(t *testing.T, ctx context.Context, c *cfmessageport.Conn, start time.Time) {
	t.Helper()
	select {
	case <-c.Done():
		require.Less(t, time.Since(start), time.Second)
		require.ErrorIs(t, c.Err(), cfmessageport.ErrPeerClosed)
	case <-time.After(5 * time.Second):
		t.Fatal("the connection is still open 5 s after its peer was killed")
	}
	_, err := c.Request(ctx, msgEcho, nil)
	require.ErrorIs(t, err, cfmessageport.ErrInvalid)
	require.NoError(t, c.Close())
	if c.LocalName() != "" {
		_, err = bootstrap.LookUp(ctx, c.LocalName())
		require.ErrorIs(t, err, bootstrap.ErrUnknownService, "the connection's name is withdrawn")
	}
}

// exchangeBothWays asks the peer to make n requests on c while this side makes n of its own, and
// reports the first failure of either side.
func exchangeBothWays(ctx context.Context, c *cfmessageport.Conn, box *doneBox, n int) error {
	if err := c.Send(ctx, msgPairStart, []byte(strconv.Itoa(n))); err != nil {
		return err
	}
	want := fmt.Sprintf("ok %d", n)
	if result := requestMany(c, n); result != want {
		return fmt.Errorf("this side's requests: %s", result)
	}
	select {
	case result := <-box.ch(c):
		if result != want {
			return fmt.Errorf("the peer's requests: %s", result)
		}
		return nil
	case <-ctx.Done():
		return errors.New("the peer's requests never finished")
	}
}

// A names handshake answered with a name nobody serves is a refusal whose cause is the failed
// look-up, quoting that name once.
func TestPairReplyNamingNoService(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	bogus := uniqueName(t) + ".nobody"
	srv := listen(t, cfmessageport.HandlerFunc(func(context.Context, *cfmessageport.Message) ([]byte, error) {
		return []byte(bogus), nil
	}), nil)
	_, err := cfmessageport.DialPair(ctx, srv.Name(), echo, &cfmessageport.PairOptions{NamesOnly: true})
	require.ErrorIs(t, err, cfmessageport.ErrPairRefused)
	require.ErrorIs(t, err, bootstrap.ErrUnknownService)
	require.Equal(t, 1, strings.Count(err.Error(), bogus), "%v", err)
}
