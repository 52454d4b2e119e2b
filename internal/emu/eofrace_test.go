//go:build linux

package emu

import (
	"errors"
	"io"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// eofRaceRounds is how many times the tests below make a writer send and close while its reader
// polls. Linux reports a spurious end of file in about 1 read in 500 of such rounds on a 2-vCPU
// machine (recvAfterEOF), so that without the second read each test fails with near certainty
// there; with one CPU the race cannot happen and the tests pass either way.
const eofRaceRounds = 4000

// An answer sent just before the peer closes its end is read, never taken for the end of file
// the same read may meet (recvAfterEOF): the look-up whose answer was lost so failed with 1102
// while its owner lived.
func TestReceiveHandoffAnswerBeforeHangUp(t *testing.T) {
	for _, wait := range []bool{false, true} {
		name := map[bool]string{false: "polling", true: "blocking"}[wait]
		t.Run(name, func(t *testing.T) {
			warmUp(t)
			handoffBeforeHangUp(t, wait, -1)
			before := openFiles(t)
			for round := range eofRaceRounds {
				handoffBeforeHangUp(t, wait, round)
			}
			requireNoNewFDs(t, before, "the rounds")
		})
	}
}

// handoffBeforeHangUp has a peer refuse a hand-off and close its end at once while ReceiveHandoff
// reads, and requires the refusal.
func handoffBeforeHangUp(t *testing.T, wait bool, round int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	sent := make(chan error, 1)
	go func() {
		err := RefuseHandoff(fds[1], abi.BOOTSTRAP_UNKNOWN_SERVICE)
		unix.Close(fds[1])
		sent <- err
	}()
	var code int32
	for {
		_, code, err = ReceiveHandoff(fds[0], wait)
		if !errors.Is(err, unix.EAGAIN) {
			break
		}
	}
	unix.Close(fds[0])
	require.NoError(t, <-sent)
	if err != nil || code != abi.BOOTSTRAP_UNKNOWN_SERVICE {
		t.Fatalf("round %d: the answer read as err %v, code %d", round, err, code)
	}
}

// A reply sent on a lane just before its last holder closes it is received, never dropped as a
// malformed message for the end of file its read may meet.
func TestLaneReplyBeforeHangUp(t *testing.T) {
	warmUp(t)
	laneReplyBeforeHangUp(t, -1)
	before := openFiles(t)
	for round := range eofRaceRounds {
		laneReplyBeforeHangUp(t, round)
	}
	requireNoNewFDs(t, before, "the rounds")
}

// laneReplyBeforeHangUp plays the peer a request with a send-once reply right went to (as
// laneFromPeer does, but releasing all it made before it returns): the peer replies on the lane
// and closes it at once while the reply port is polled, and the reply must be what is received.
func laneReplyBeforeHangUp(t *testing.T, round int) {
	t.Helper()
	server, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(server, server, dispMakeSend))
	defer Destruct(server, -1, 0)
	reply, kr := Construct(0, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	defer Destruct(reply, 0, 0)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[0])
	lfd, _, tok := laneThrough(t, server, fds, reply)
	// The peer says hello, so the port closes its own copy of the write end: the peer's close
	// below is the lane's hang-up.
	require.NoError(t, laneCtl(lfd, laneHello, 0, -1))
	_, kr = tryReceiveNow(reply)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
	sent := make(chan error, 1)
	go func() {
		d := datagram{id: 77, bodyFD: -1, reply: record{fd: -1, counterFD: -1}, laneToken: tok}
		err := unix.Sendmsg(lfd, d.encode(nil), nil, nil, 0)
		unix.Close(lfd)
		sent <- err
	}()
	var m *Msg
	for {
		if m, kr = tryReceiveNow(reply); kr != abi.MACH_RCV_TIMED_OUT {
			break
		}
	}
	require.NoError(t, <-sent)
	if kr != abi.MACH_MSG_SUCCESS || m.ID != 77 {
		t.Fatalf("round %d: the reply was received as %#x (id %d)", round, uint32(kr), m.ID)
	}
}

// An empty datagram is no answer: alone, from a peer still there, it reads as end of file, as it
// did before recvAfterEOF's second read; followed by an answer, the answer is what is read. The
// second read takes nothing else, so no descriptor is left behind.
func TestReceiveHandoffEmptyDatagram(t *testing.T) {
	cases := []struct {
		name     string
		after    func(fd int) error // what the peer sends after the empty datagram
		wantEOF  bool
		wantCode int32
	}{
		{"alone", func(int) error { return nil }, true, 0},
		{"then a refusal", func(fd int) error { return RefuseHandoff(fd, abi.BOOTSTRAP_NOT_PRIVILEGED) }, false, abi.BOOTSTRAP_NOT_PRIVILEGED},
	}
	warmUp(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := openFiles(t)
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
			require.NoError(t, err)
			require.NoError(t, unix.Sendmsg(fds[1], nil, nil, nil, 0))
			require.NoError(t, tc.after(fds[1]))
			_, code, err := ReceiveHandoff(fds[0], false)
			if tc.wantEOF {
				require.ErrorIs(t, err, io.EOF)
			} else {
				require.NoError(t, err)
				require.Equal(t, tc.wantCode, code)
			}
			unix.Close(fds[0])
			unix.Close(fds[1])
			requireNoNewFDs(t, before, "the pair")
		})
	}
}
