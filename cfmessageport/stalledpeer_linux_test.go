package cfmessageport_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func init() { extraRoles["stalledpeer"] = runStalledPeer }

// runStalledPeer plays a peer that never takes its replies: it fills a socket's buffer, never
// reads it, and for each message id read from stdin sends the service a request whose reply
// right is that socket (forged on the emulation's channel, as any peer can), then says "sent".
func runStalledPeer(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	service, err := bootstrap.LookUp(ctx, name)
	if err != nil {
		return err
	}
	defer service.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	full := fds[1]
	for {
		err := unix.Sendmsg(full, make([]byte, 4096), nil, nil, unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			break
		}
		if err != nil {
			return err
		}
	}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for conv := int32(1); in.Scan(); conv++ {
		id, err := strconv.Atoi(in.Text())
		if err != nil {
			return err
		}
		var m mach.Message
		p := wire.Packet{MsgID: int32(id), ConvID: conv, Data: []byte("stalled")}
		if err := p.Encode(&m, mach.Port{}, mach.Port{}); err != nil {
			return err
		}
		if kr := emu.SendWithReplyFD(uint32(service.Name()), wire.MsgID, m.Body, full); kr != 0 {
			return fmt.Errorf("send: %#x", kr)
		}
		fmt.Println("sent")
	}
	return nil
}

// A peer whose replies can never be delivered (its reply socket is full and never read) does not
// stop a server that serves one request at a time: each reply to it is dropped at once, as Mach
// queues a send-once message at once, and a live client beside it gets every reply, each
// within a second (a bound on correctness: without the fix the server waits for the stalled
// peer for ever). Nothing leaks: the dropped replies' rights and out-of-line memory are released.
func TestStalledPeerDoesNotStopServer(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 60*time.Second)
	const msgLarge = 100 // answered out of line, from a region the server sends with deallocate
	large := bytes.Repeat([]byte("L"), 64<<10)
	srv := listen(t, cfmessageport.HandlerFunc(func(_ context.Context, req *cfmessageport.Message) ([]byte, error) {
		if req.MsgID == msgLarge {
			return large, nil
		}
		return req.Data, nil
	}), &cfmessageport.ServerOptions{Concurrency: 1})
	r := dial(t, ctx, srv.Name())
	mapped := cfmessageport.OOLMapped()
	drops := emu.SendOnceDrops()

	peer := startChild(t, "stalledpeer", srv.Name())
	const n = 50
	for i := range n {
		id := msgEcho
		if i%2 == 1 {
			id = msgLarge
		}
		fmt.Fprintln(peer.Stdin, id)
		require.Equal(t, "sent", peer.Line(t))
		want := []byte(fmt.Sprint("live ", i))
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		got, err := r.Request(rctx, msgEcho, want)
		cancel()
		require.NoError(t, err, "request %d beside the stalled peer", i)
		require.Equal(t, want, got)
	}
	// A drop is counted before the send that made it returns and releases the reply's memory.
	testproc.Eventually(t, "every reply to the stalled peer dropped, its memory unmapped", 10*time.Second,
		func() bool { return emu.SendOnceDrops()-drops == n && cfmessageport.OOLMapped() == mapped })
}
