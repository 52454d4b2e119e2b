//go:build linux

package bootstrap_test

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Peers of this uid that connect to a name's link and say nothing (a buggy client, a scanner of
// the directory, a hostile process) cannot pin the serving process's descriptors without bound:
// the agent waits for the requests of at most 64 connections at once and gives up the others. The
// legitimate look-up, queued behind the silent connections, proves the agent accepted them all
// (a listener's queue is FIFO); the count follows within 2 s, well inside requestWait (on a
// machine stalled for 5 s right there the test would pass wrongly, never fail wrongly).
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
	// The connections given up close as their goroutines run, a moment later: the count may
	// take up to 2 s to come down, well inside requestWait (5 s), after which even an agent
	// without a bound would have closed them all.
	owners := func() int { return leakcheck.FDs(t) - before - silent } // the peers' ends are this process's too
	for deadline := time.Now().Add(2 * time.Second); owners() > silent/4 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	n := owners()
	t.Logf("%d silent connections: the owner holds %d more descriptors", silent, n)
	require.LessOrEqual(t, n, silent/4, "descriptors the owner holds for %d silent peers", silent)
}

// A look-up whose request comes a moment after its connect (a requester descheduled in between,
// on a loaded machine) is answered even while maxWaiting (64) silent connections wait: the agent
// gives up the connection that has waited longest, not the new one, so silent peers cannot turn
// a real look-up away.
func TestLateRequestIsAnsweredPastTheSilentPeers(t *testing.T) {
	const silent = 64
	name := uniqueName(t)
	register(t, name, nil)
	sock, _, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	ctx := ctxTimeout(t, 20*time.Second)
	dial := func() *net.UnixConn { return dialAgent(t, sock) }
	// acceptedSoFar returns once the agent has accepted every connection made before it: a look-up
	// queued behind them is answered (a listener's queue is FIFO).
	acceptedSoFar := func() {
		s, err := bootstrap.LookUp(ctx, name)
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
	for range silent {
		dial()
	}
	acceptedSoFar()
	late := dial()
	acceptedSoFar() // the late connection waits for its request now, beside the silent ones
	req, err := bootstrap.LookUpRequest(name, 0)
	require.NoError(t, err)
	_, err = late.Write(req)
	require.NoError(t, err)
	requireAnswered(t, late, "the late look-up is answered, not closed")
}

// requireAnswered reads the agent's answer to the look-up request sent on conn (within 20 s),
// requires it to be a send right, and releases it.
func requireAnswered(t *testing.T, conn *net.UnixConn, msg string) {
	t.Helper()
	raw, err := conn.SyscallConn()
	require.NoError(t, err)
	var got uint32
	var code int32
	var rerr error
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
	require.NoError(t, raw.Read(func(fd uintptr) bool {
		got, code, rerr = emu.ReceiveHandoff(int(fd), false)
		return !errors.Is(rerr, unix.EAGAIN)
	}))
	require.NoError(t, rerr, msg)
	require.Zero(t, code)
	require.NotZero(t, got, "a send right")
	require.NoError(t, mach.AdoptSend(mach.Name(got)).Close())
}

// dialAgent connects to the socket a name's link leads to, closed at cleanup.
func dialAgent(t *testing.T, sock string) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: sock, Net: "unixpacket"})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// A look-up whose connection the agent gave up on (it waited for its request behind maxWaiting
// silent peers: 64 requester processes starting at once on a loaded machine, which a benchmark
// met as 1102) is tried again, and answered: the agent closing a connection unanswered is not
// an answer, and a live owner's name is not unknown.
func TestLookUpGivenUpByTheAgentIsTriedAgain(t *testing.T) {
	const silent = 64
	name := uniqueName(t)
	register(t, name, nil)
	sock, _, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	ctx := ctxTimeout(t, 20*time.Second)
	var fired atomic.Bool
	defer bootstrap.OnLookUpConnected(func() {
		if !fired.CompareAndSwap(false, true) {
			return // the look-ups made here
		}
		func() {
			// Another look-up, queued behind this one's connection, returns once the agent
			// accepted it: it now waits for a request that is held back here.
			s, err := bootstrap.LookUp(ctx, name)
			require.NoError(t, err)
			require.NoError(t, s.Close())
			for range silent {
				dialAgent(t, sock)
			}
			s, err = bootstrap.LookUp(ctx, name) // the silent ones are accepted: this one was given up
			require.NoError(t, err)
			require.NoError(t, s.Close())
		}()
	})()
	s, err := bootstrap.LookUp(ctx, name)
	require.True(t, fired.Load())
	require.NoError(t, err, "a live owner's name")
	require.NoError(t, s.Close())
}
