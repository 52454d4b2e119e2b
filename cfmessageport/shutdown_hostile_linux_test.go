//go:build linux

package cfmessageport_test

import (
	"testing"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// once Shutdown has begun, the receive loop ends at the first receive error of any kind
// (serve checks s.stopping before mach.PortGone and mach.MessageDropped), so one malformed
// datagram queued among the requests that Shutdown promises to answer ends serving there: the
// requests behind it are destroyed with the port. Any peer can write such a datagram, and a
// graceful Shutdown is exactly when a server must not give up on what it accepted. Here every
// message travels on one channel, so the order is fixed: the request after the datagram is
// never answered.
func TestShutdownSurvivesHostileDatagram(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20e9)
	p := newShutdownPeer(t, ctx)
	fd, ok := emu.ChannelFD(uint32(p.service.Name()))
	require.True(t, ok)
	p.send(2, "before the datagram")
	require.NoError(t, unix.Sendmsg(fd, nil, nil, nil, 0)) // an empty datagram: no message
	p.send(3, "after the datagram")
	p.shutdown()
	require.Equal(t, map[int32]string{1: "first", 2: "before the datagram", 3: "after the datagram"}, p.replies(3))
	require.ErrorIs(t, p.srv.Err(), cfmessageport.ErrServerClosed)
	require.Positive(t, p.srv.Dropped())
}
