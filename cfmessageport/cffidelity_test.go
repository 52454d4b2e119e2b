package cfmessageport_test

import (
	"context"
	"encoding/binary"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// Behaviours held against Apple's CFMessagePort.c: what CF puts on the wire or answers where
// our first version did otherwise. They run over the emulation, through the libSystem double
// (TestSuiteThroughLibSystemDouble) and on the macOS runners.

// rawService registers a raw port under a fresh name: a stand-in for a CF service whose received
// messages the test reads byte for byte.
func rawService(t *testing.T) (string, *mach.ReceiveRight) {
	t.Helper()
	port, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	name := uniqueName(t)
	reg, err := bootstrap.Register(name, port, nil)
	require.NoError(t, err)
	t.Cleanup(func() { reg.Close() })
	return name, port
}

// byteslenOf is the inner header's byteslen of a received inline request.
func byteslenOf(t *testing.T, m *mach.Message) int32 {
	t.Helper()
	require.False(t, m.Complex)
	require.GreaterOrEqual(t, len(m.Body), 36)
	return int32(binary.LittleEndian.Uint32(m.Body[32:]))
}

// CFMessagePortSendRequest sends NULL data with byteslen -1 and empty data with 0
// (__CFMessagePortCreateMessage is given `data ? CFDataGetLength(data) : -1`).
func TestNilDataIsSentAsNoData(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	name, port := rawService(t)
	r := dial(t, ctx, name)
	cases := []struct {
		name string
		data []byte
		want int32
	}{
		{"nil data", nil, -1},
		{"empty data", []byte{}, 0},
		{"three bytes", []byte("abc"), 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NoError(t, r.Send(ctx, 7, tc.data))
			var m mach.Message
			require.NoError(t, mach.Receive(ctx, port, &m))
			defer m.Destroy()
			require.Equal(t, tc.want, byteslenOf(t, &m), "Send")

			// Request: the same, with a reply right to destroy unanswered.
			errc := make(chan error, 1)
			rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			go func() { _, err := r.Request(rctx, 7, tc.data); errc <- err }()
			var req mach.Message
			require.NoError(t, mach.Receive(ctx, port, &req))
			require.Equal(t, tc.want, byteslenOf(t, &req), "Request")
			require.NoError(t, req.Destroy())
			require.ErrorIs(t, <-errc, cfmessageport.ErrReceiveTimeout)
		})
	}
}

// A handler's reply over 1.5 GiB: CF logs it and answers with empty data (byteslen 0), so the
// requester gets a reply instead of waiting for its timeout (__CFMessagePortPerform sets
// return_len to 0 and returnData to NULL, and still builds the reply).
func TestReplyOverMaxPayloadIsSentEmpty(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	log := &recordingLog{}
	srv := listen(t, cfmessageport.HandlerFunc(func(context.Context, *cfmessageport.Message) ([]byte, error) {
		return make([]byte, wire.MaxPayload+1), nil // never touched: the pages are not faulted in
	}), &cfmessageport.ServerOptions{ErrorLog: log.logger()})
	service, reply := rawPeer(t, ctx, srv.Name())

	var out mach.Message
	p := wire.Packet{MsgID: 9, ConvID: 5, Data: []byte("big please")}
	require.NoError(t, p.Encode(&out, mach.CopySendOf(service), mach.MakeSendOnceOf(reply)))
	require.NoError(t, mach.Send(ctx, &out))
	var in mach.Message
	require.NoError(t, mach.Receive(ctx, reply, &in))
	defer in.Destroy()
	got, err := wire.Decode(&in, true)
	require.NoError(t, err, "a CF reply, not the send-once notification of a dropped reply right")
	require.Equal(t, int32(-5), got.ConvID)
	require.Equal(t, int32(9), got.MsgID)
	require.False(t, got.NoData, "byteslen 0, not -1")
	require.Empty(t, got.Data)
	require.Equal(t, int32(0), byteslenOf(t, &in))
	require.Eventually(t, func() bool { return log.has("cfmessageport: reply larger than 1.5 GiB sent empty") },
		5*time.Second, 10*time.Millisecond)

	// The Go client sees the same: an empty reply, no error.
	r := dial(t, ctx, srv.Name())
	data, err := r.Request(ctx, 9, nil)
	require.NoError(t, err)
	require.Empty(t, data)
}

// Closing a Remote while a request waits for its reply fails the request with
// kCFMessagePortBecameInvalidError (-5), as CF returns for any invalidation during the wait;
// a request begun on the closed remote fails with kCFMessagePortIsInvalid (-3).
func TestCloseWhileWaitingIsBecameInvalid(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 10*time.Second)
	name, port := rawService(t)
	r, err := cfmessageport.Dial(ctx, name)
	require.NoError(t, err)
	errc := make(chan error, 1)
	go func() { _, err := r.Request(ctx, 1, []byte("x")); errc <- err }()
	var req mach.Message
	require.NoError(t, mach.Receive(ctx, port, &req)) // the request is out: it now waits
	require.NoError(t, r.Close())
	err = <-errc
	require.ErrorIs(t, err, cfmessageport.ErrBecameInvalid)
	require.NotErrorIs(t, err, cfmessageport.ErrInvalid)
	require.NoError(t, req.Destroy())

	_, err = r.Request(ctx, 1, []byte("x"))
	require.ErrorIs(t, err, cfmessageport.ErrInvalid)
	require.NotErrorIs(t, err, cfmessageport.ErrBecameInvalid)
}

// recordingLog is an ErrorLog that keeps the messages of the lines logged.
type recordingLog struct {
	mu   sync.Mutex
	msgs []string
}

func (l *recordingLog) logger() *slog.Logger { return slog.New(l) }

func (l *recordingLog) has(msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.msgs, msg)
}

func (l *recordingLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *recordingLog) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.msgs = append(l.msgs, r.Message)
	l.mu.Unlock()
	return nil
}
func (l *recordingLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *recordingLog) WithGroup(string) slog.Handler      { return l }

// A service that answers and then dies: every reply it sent before its death is delivered, to
// the requester receiving and to the ones waiting for it, whatever the order in which the
// replies, the death notification and the requesters' wake-ups arrive. Only a request whose
// reply never came fails, with -5.
func TestRepliesQueuedBeforeDeathAreDelivered(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 60*time.Second)
	for i := range 20 {
		name, port := rawService(t)
		r := dial(t, ctx, name)
		type result struct {
			data string
			err  error
		}
		const answered = 12
		results := make(chan result, answered+1)
		sent := []string{"never"}
		for j := range answered {
			sent = append(sent, strconv.Itoa(j))
		}
		for _, data := range sent {
			go func() {
				got, err := r.Request(ctx, 1, []byte(data))
				results <- result{string(got), err}
			}()
		}
		var reqs []*mach.Message
		for range sent {
			m := new(mach.Message)
			require.NoError(t, mach.Receive(ctx, port, m))
			reqs = append(reqs, m)
		}
		for _, m := range reqs {
			p, err := wire.Decode(m, false)
			require.NoError(t, err)
			if string(p.Data) == "never" {
				continue
			}
			reply, ok := m.TakeRemote().(*mach.SendOnceRight)
			require.True(t, ok)
			var out mach.Message
			rp := wire.Packet{MsgID: p.MsgID, ConvID: -p.ConvID, Data: p.Data}
			require.NoError(t, rp.Encode(&out, mach.MoveSendOnceOf(reply), mach.Port{}))
			require.NoError(t, mach.Send(ctx, &out))
		}
		require.NoError(t, port.Close()) // the service dies after answering all but one
		got := map[string]bool{}
		for range sent {
			res := <-results
			if res.err != nil {
				require.ErrorIs(t, res.err, cfmessageport.ErrBecameInvalid, "round %d", i)
				got["-5"] = true
				continue
			}
			got[res.data] = true
		}
		want := map[string]bool{"-5": true}
		for _, data := range sent[1:] {
			want[data] = true
		}
		require.Equal(t, want, got, "round %d", i)
		for _, m := range reqs {
			require.NoError(t, m.Destroy())
		}
	}
}
