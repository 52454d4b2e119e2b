package main

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// The raw echo server takes the request's reply right with TakeRemote and keeps it only
// when it is a send-once right; a peer that offers a send right as the reply port (msgh_local
// MAKE_SEND) has that right taken out of the message and never released. Each such message
// leaks a name (and, from another process, the right's socket fd), so a peer can exhaust the
// server's fds, after which every request carrying a reply right is dropped for want of fds
// (MSG_CTRUNC). cfmessageport.Server releases such a right (TestServerReleasesSendRightReplyPorts);
// rawServe does not.
func TestRawServeReleasesSendRightReplyPorts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	port, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- rawServe(port, nil, nil, func(error) {}) }()
	defer func() {
		port.Close()
		<-served
	}()

	peer, err := mach.NewPort(mach.PortOptions{}) // the port the peer offers to be answered on
	require.NoError(t, err)
	defer peer.Close()
	// Both messages go through one send right: the emulation keeps a port's order per channel
	// only, and a right's copies share one.
	service, err := port.MakeSend()
	require.NoError(t, err)
	defer service.Close()
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(service), Local: mach.MakeSendOf(peer), ID: 7, Body: []byte("send right")}))

	// A legitimate request after it: once answered, the server is done with the first one.
	reply, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer reply.Close()
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(service), Local: mach.MakeSendOnceOf(reply), ID: 8, Body: []byte("legit")}))
	var in mach.Message
	require.NoError(t, mach.Receive(ctx, reply, &in))
	require.Equal(t, int32(8), in.ID)
	_ = in.Destroy()

	refs, err := mach.Refs(peer.Name(), mach.RightSend)
	require.NoError(t, err)
	require.Zero(t, refs, "the send right offered as a reply port is still held by the server")
}
