//go:build linux

package emu

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A send right's channel is made only with its hang-up watch: with two fd numbers free (its
// socketpair's) and none for the monitor's dup of the read end, a channel made without the
// watch would keep its port's senders after its holder left, and no-senders would never come
// (ipc_port_release_send_and_unlock → ipc_notify_no_senders in xnu). make fails instead, as at
// any fd limit, and leaves no fd behind.
func TestSendChannelNotMadeWithoutItsHangUpWatch(t *testing.T) {
	port, kr := Construct(0, 0, 0)
	require.Equal(t, int32(0), kr)
	t.Cleanup(func() { Destruct(port, 0, 0) })
	sp.mu.Lock()
	p := sp.entries[port].recv
	require.NoError(t, p.openFDs())
	epfd := p.epfd
	sp.mu.Unlock()
	monitorAdd(-1, 0, nil) // starts the monitor (and fails on the bad fd): its fds exist before the limit

	// Other goroutines of the test binary may free an fd number meanwhile (the monitor closing
	// a watch's dup), which the dup then gets: that trial says nothing, and runs again.
	for trial := 0; ; trial++ {
		require.Less(t, trial, 10, "an fd number kept freeing up under the limit")
		cs := &chanSetup{kind: setupSend, p: p, epfd: epfd, r: -1, w: -1, cr: -1, cw: -1}
		watched, free, err := makeAtTheLimit(t, cs)
		if err == nil && watched {
			continue
		}
		require.ErrorIs(t, err, unix.EMFILE, "a send-right channel made without its hang-up watch")
		require.GreaterOrEqual(t, free, 2, "make closed what it made")
		return
	}
}

// makeAtTheLimit runs cs.make with two fd numbers free, and returns whether the channel it made
// (if any, closed since) had its hang-up watch, how many fd numbers were free after it, and its
// error.
func makeAtTheLimit(t *testing.T, cs *chanSetup) (watched bool, free int, err error) {
	limit := exhaustFDs(t)
	defer limit.restore()
	for range 2 { // the socketpair's
		last := len(limit.fills) - 1
		unix.Close(limit.fills[last])
		limit.fills = limit.fills[:last]
	}
	err = cs.make()
	for { // what make left open, if anything, is not free now
		fd, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			break
		}
		limit.fills = append(limit.fills, fd)
		free++
	}
	if err == nil {
		watched = cs.rc.monitor != 0
		cs.close()
	}
	return watched, free, err
}
