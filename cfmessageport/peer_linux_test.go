package cfmessageport_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
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
	"github.com/machport/machport/mach"
	"github.com/machport/machport/peer"
	"github.com/stretchr/testify/require"
)

// The environment of the peer-requirement roles.
const (
	requireEnv = "MACHPORT_TEST_REQUIRE" // "exe:PATH" or "uid:N": the server's requirement
	victimEnv  = "MACHPORT_TEST_VICTIM"  // the name a names-handshake attacker gives
)

func init() {
	extraRoles["reqserve"] = runRequiringServer
	extraRoles["reqclient"] = runRequestOnce
	extraRoles["pairattack"] = runPairAttacker
}

// requirementFrom parses requireEnv's forms.
func requirementFrom(s string) (*peer.Requirement, error) {
	kind, arg, _ := strings.Cut(s, ":")
	switch kind {
	case "exe":
		return peer.New(peer.Executable(arg))
	case "uid":
		uid, err := strconv.ParseUint(arg, 10, 32)
		if err != nil {
			return nil, err
		}
		return peer.New(peer.UID(uint32(uid)))
	}
	return nil, fmt.Errorf("no requirement %q", s)
}

// runRequiringServer serves the echo handler with the requirement of requireEnv.
func runRequiringServer(name string) error {
	req, err := requirementFrom(os.Getenv(requireEnv))
	if err != nil {
		return err
	}
	return serveUntilStdinCloses(name, echo, &cfmessageport.ServerOptions{Require: req})
}

// runRequestOnce sends name one echo request, waits a second at most for the reply, and prints
// "reply DATA" or "error ERR".
func runRequestOnce(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	r, err := cfmessageport.Dial(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	if got, err := r.Request(ctx, msgEcho, []byte("hello")); err != nil {
		fmt.Println("error", err)
	} else {
		fmt.Println("reply", string(got))
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// runPairAttacker sends the pairing service name a names handshake that gives victimEnv's name,
// a connection name another process serves, and prints the service's answer.
func runPairAttacker(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cfmessageport.Dial(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	got, err := r.Request(ctx, cfmessageport.PairMsgID, []byte(os.Getenv(victimEnv)))
	if err != nil {
		fmt.Println("error", err)
	} else {
		fmt.Println("reply", string(got))
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// testBinary returns the test binary's path and the path of a copy of it: the same program under
// another executable path, which an Executable requirement tells apart.
func testBinary(t *testing.T) (real, impostor string) {
	t.Helper()
	real, err := os.Executable()
	require.NoError(t, err)
	data, err := os.ReadFile(real)
	require.NoError(t, err)
	impostor = filepath.Join(t.TempDir(), "impostor.test")
	require.NoError(t, os.WriteFile(impostor, data, 0o755))
	return real, impostor
}

// startFrom starts the test binary at exe in role, for name, and waits for its first line when
// ready is set.
func startFrom(t *testing.T, exe, role, name string, env ...string) *testproc.Child {
	t.Helper()
	return testproc.StartCommand(t, exec.Command(exe, "-test.run=^$"), role, name, env...)
}

// A squatter, registered under the name before the real server, is caught at its first reply by a
// client requiring the server's executable or user: the reply is not returned, the Remote is
// invalid with ErrPeerRejected naming the predicate, and no later request is sent to it. The
// real server passes the same requirements.
func TestClientRejectsImpostorServer(t *testing.T) {
	leakcheck.Check(t)
	real, impostor := testBinary(t)
	uid := uint32(os.Geteuid())
	for _, tc := range []struct {
		name   string
		server string // the executable serving the name
		req    []peer.Predicate
		cause  error // nil: the server passes
	}{
		{"impostor executable", impostor, []peer.Predicate{peer.Executable(real)}, peer.ErrExecutableMismatch},
		{"another user", real, []peer.Predicate{peer.UID(uid + 1)}, peer.ErrUIDMismatch},
		{"the real server", real, []peer.Predicate{peer.UID(uid), peer.Executable(real)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := uniqueName(t)
			c := startFrom(t, tc.server, "serve", name)
			require.Equal(t, "ready", c.Line(t))
			req, err := peer.New(tc.req...)
			require.NoError(t, err)
			defer req.Close() // its pidfds, before the leak check
			ctx := ctxTimeout(t, 10*time.Second)
			r, err := cfmessageport.DialWithOptions(ctx, name, &cfmessageport.DialOptions{Require: req})
			require.NoError(t, err)
			defer r.Close()
			got, err := r.Request(ctx, msgEcho, []byte("secret"))
			if tc.cause == nil {
				require.NoError(t, err)
				require.Equal(t, "secret", string(got))
				return
			}
			require.Nil(t, got)
			require.ErrorIs(t, err, cfmessageport.ErrPeerRejected)
			require.ErrorIs(t, err, tc.cause)
			var ce *peer.CheckError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, tc.req[0].String(), ce.Predicate)
			require.Equal(t, c.Cmd.Process.Pid, ce.PID)
			select {
			case <-r.Invalidated():
			default:
				t.Fatal("the remote is still valid")
			}
			// Every later use fails the same way, without reaching the impostor.
			_, err = r.Request(ctx, msgEcho, []byte("more"))
			require.ErrorIs(t, err, cfmessageport.ErrPeerRejected)
			require.ErrorIs(t, r.Send(ctx, msgEcho, nil), cfmessageport.ErrPeerRejected)
		})
	}
}

// lockedBuffer is a log destination safe for the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A client whose executable fails the server's requirement gets nothing (no reply, and the
// handler never runs for it): its request is dropped, counted and logged with the predicate;
// the server goes on serving the clients that pass, in this process and in another.
func TestServerDropsClientFailingRequirement(t *testing.T) {
	leakcheck.Check(t)
	real, impostor := testBinary(t)
	req, err := peer.New(peer.Executable(real))
	require.NoError(t, err)
	defer req.Close()
	var log lockedBuffer
	var served atomic.Int64
	handler := cfmessageport.HandlerFunc(func(_ context.Context, m *cfmessageport.Message) ([]byte, error) {
		served.Add(1)
		return m.Data, nil
	})
	name := uniqueName(t)
	srv, err := cfmessageport.Listen(name, handler, &cfmessageport.ServerOptions{Require: req,
		ErrorLog: slog.New(slog.NewTextHandler(&log, nil))})
	require.NoError(t, err)
	defer srv.Close()

	bad := startFrom(t, impostor, "reqclient", name)
	line := bad.Line(t)
	require.True(t, strings.HasPrefix(line, "error "), "the impostor client says %q", line)
	require.Contains(t, line, "kCFMessagePortReceiveTimeout")
	require.Zero(t, served.Load(), "the handler ran for the impostor")
	require.Equal(t, uint64(1), srv.Dropped())
	require.Contains(t, log.String(), "the sender fails the server's requirement")
	require.Contains(t, log.String(), "pid="+strconv.Itoa(bad.Cmd.Process.Pid))
	require.Contains(t, log.String(), "executable ==")

	good := startFrom(t, real, "reqclient", name)
	require.Equal(t, "reply hello", good.Line(t))
	ctx := ctxTimeout(t, 10*time.Second)
	r, err := cfmessageport.Dial(ctx, name)
	require.NoError(t, err)
	defer r.Close()
	got, err := r.Request(ctx, msgEcho, []byte("still here"))
	require.NoError(t, err)
	require.Equal(t, "still here", string(got))
	require.Equal(t, int64(2), served.Load())
	require.Equal(t, uint64(1), srv.Dropped())
}

// The names-handshake attack: a process that knows the name of another connection's local port
// gives it in a handshake of its own. The server probes the name, the victim's connection
// answers, and the reply's sender is not the handshake's: no connection opens, nothing reaches
// the victim's handler, and the refusal is counted and logged.
func TestNamesHandshakeAttackRefused(t *testing.T) {
	leakcheck.Check(t)
	var log lockedBuffer
	name := uniqueName(t)
	l, err := cfmessageport.ListenPair(name, echo, &cfmessageport.PairOptions{NamesOnly: true,
		ErrorLog: slog.New(slog.NewTextHandler(&log, nil))})
	require.NoError(t, err)
	defer l.Close()
	ctx := ctxTimeout(t, 10*time.Second)

	var victimCalls atomic.Int64
	victim, err := cfmessageport.DialPair(ctx, name, cfmessageport.HandlerFunc(
		func(_ context.Context, m *cfmessageport.Message) ([]byte, error) {
			victimCalls.Add(1)
			return m.Data, nil
		}), &cfmessageport.PairOptions{NamesOnly: true})
	require.NoError(t, err)
	defer victim.Close()
	require.NotEmpty(t, victim.LocalName())
	accepted, err := l.Accept(ctx)
	require.NoError(t, err)
	defer accepted.Close()
	// The victim's connection works both ways.
	got, err := accepted.Request(ctx, msgEcho, []byte("to the victim"))
	require.NoError(t, err)
	require.Equal(t, "to the victim", string(got))
	require.Equal(t, int64(1), victimCalls.Load())

	attacker := testproc.Start(t, "pairattack", name, victimEnv+"="+victim.LocalName())
	line := attacker.Line(t)
	require.True(t, strings.HasPrefix(line, "reply "), "the attacker got %q", line)
	testproc.Eventually(t, "the refusal is counted", 10*time.Second, func() bool { return l.Dropped() == 1 })
	require.Contains(t, log.String(), "the sender does not serve the name it gave")
	require.Contains(t, log.String(), "pid="+strconv.Itoa(attacker.Cmd.Process.Pid))

	// No connection was opened for the attacker (the refusal above came after its probe).
	actx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = l.Accept(actx)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, int64(1), victimCalls.Load(), "the victim's handler was called")
	require.NoError(t, victim.Err())
}

// A pairing client that requires the service's user refuses a service that fails it, over
// either handshake; one that passes pairs.
func TestDialPairRequiresService(t *testing.T) {
	leakcheck.Check(t)
	name := uniqueName(t)
	l, err := cfmessageport.ListenPair(name, echo, nil)
	require.NoError(t, err)
	defer l.Close()
	uid := uint32(os.Geteuid())
	for _, namesOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("namesOnly=%v", namesOnly), func(t *testing.T) {
			ctx := ctxTimeout(t, 10*time.Second)
			other, err := peer.New(peer.UID(uid + 1))
			require.NoError(t, err)
			defer other.Close()
			c, err := cfmessageport.DialPair(ctx, name, echo, &cfmessageport.PairOptions{NamesOnly: namesOnly, Require: other})
			require.ErrorIs(t, err, cfmessageport.ErrPeerRejected)
			require.ErrorIs(t, err, peer.ErrUIDMismatch)
			require.Nil(t, c)

			same, err := peer.New(peer.UID(uid))
			require.NoError(t, err)
			defer same.Close()
			c, err = cfmessageport.DialPair(ctx, name, echo, &cfmessageport.PairOptions{NamesOnly: namesOnly, Require: same})
			require.NoError(t, err)
			defer c.Close()
			got, err := c.Request(ctx, msgEcho, []byte("ok"))
			require.NoError(t, err)
			require.Equal(t, "ok", string(got))
			accepted, err := l.Accept(ctx)
			require.NoError(t, err)
			accepted.Close()
		})
	}
}

// A pairing service that requires its clients' user refuses a client that fails it, over both
// handshakes (each dropped, counted, and logged), and pairs with one that passes.
func TestListenPairRequiresClient(t *testing.T) {
	leakcheck.Check(t)
	uid := uint32(os.Geteuid())
	for _, tc := range []struct {
		name    string
		uid     uint32
		refused bool
	}{
		{"another user", uid + 1, true},
		{"the same user", uid, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := peer.New(peer.UID(tc.uid))
			require.NoError(t, err)
			defer req.Close()
			var log lockedBuffer
			name := uniqueName(t)
			l, err := cfmessageport.ListenPair(name, echo, &cfmessageport.PairOptions{Require: req,
				ErrorLog: slog.New(slog.NewTextHandler(&log, nil))})
			require.NoError(t, err)
			defer l.Close()
			ctx := ctxTimeout(t, 10*time.Second)
			c, err := cfmessageport.DialPair(ctx, name, echo, nil)
			if !tc.refused {
				require.NoError(t, err)
				defer c.Close()
				got, err := c.Request(ctx, msgEcho, []byte("ok"))
				require.NoError(t, err)
				require.Equal(t, "ok", string(got))
				require.Zero(t, l.Dropped())
				return
			}
			require.ErrorIs(t, err, cfmessageport.ErrPairRefused)
			require.Nil(t, c)
			require.Equal(t, uint64(2), l.Dropped()) // the fast handshake, then the names one
			require.Contains(t, log.String(), "uid ==")
		})
	}
}

// A names handshake whose probe is still unanswered holds its place in the backlog: with room
// for one connection, a second client is refused while the first one's probe waits, and pairs
// once that probe has failed (the name it gave died) and freed the place.
func TestProbingHandshakeHoldsBacklog(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	l, err := cfmessageport.ListenPair(uniqueName(t), echo, &cfmessageport.PairOptions{Backlog: 1, NamesOnly: true})
	require.NoError(t, err)
	defer l.Close()

	// A handshake giving a name whose port nobody receives on: its probe waits.
	port, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	silent, err := bootstrap.Register(uniqueName(t)+".silent", port, &bootstrap.Options{})
	require.NoError(t, err)
	r, err := cfmessageport.Dial(ctx, l.Name())
	require.NoError(t, err)
	defer r.Close()
	got, err := r.Request(ctx, cfmessageport.PairMsgID, []byte(silent.Name()))
	require.NoError(t, err)
	require.NotEmpty(t, got, "the handshake was answered")

	_, err = cfmessageport.DialPair(ctx, l.Name(), echo, &cfmessageport.PairOptions{NamesOnly: true})
	require.ErrorIs(t, err, cfmessageport.ErrPairRefused, "the backlog's place is the probing handshake's")

	mach.Drain(port)
	require.NoError(t, silent.Close()) // the probe's request dies with the port: refused
	testproc.Eventually(t, "the probe fails", 5*time.Second, func() bool { return l.Dropped() == 1 })
	c, err := cfmessageport.DialPair(ctx, l.Name(), echo, &cfmessageport.PairOptions{NamesOnly: true})
	require.NoError(t, err)
	defer c.Close()
	accepted, err := l.Accept(ctx)
	require.NoError(t, err)
	defer accepted.Close()
}
