//go:build linux

package bootstrap_test

import (
	"net"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/stretchr/testify/require"
)

// Peers of this uid that connect to a name's link and say nothing (a buggy client, a scanner of
// the directory, a hostile process) cannot pin the serving process's descriptors without bound:
// the agent waits for the requests of at most 64 connections at once and closes the others. The
// legitimate look-up, queued behind the silent connections, proves the agent accepted them all
// (a listener's queue is FIFO); the count follows at once, well inside requestWait (on a machine
// stalled for 5 s right there the test would pass wrongly, never fail wrongly).
func TestSilentPeersDoNotPinTheOwnersDescriptors(t *testing.T) {
	const silent = 500
	name := uniqueName(t)
	register(t, name, nil)
	sock, _, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	before := leakcheck.FDs(t)
	conns := make([]*net.UnixConn, 0, silent)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range silent {
		c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: sock, Net: "unixpacket"})
		require.NoError(t, err)
		conns = append(conns, c)
	}
	s, err := bootstrap.LookUp(ctxTimeout(t, 20*time.Second), name)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	grown := leakcheck.FDs(t) - before
	owners := grown - silent // the silent peers' own ends are this process's too
	t.Logf("%d silent connections: the owner holds %d more descriptors", silent, owners)
	require.LessOrEqual(t, owners, silent/4, "descriptors the owner holds for %d silent peers", silent)
}
