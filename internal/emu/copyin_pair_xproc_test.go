//go:build linux

package emu

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// pairRoleEnv makes a re-executed test binary the peer of TestCopyinSameNamePairCrossProcess
// (its own variable, so that the roles of sendright_xproc_test.go never see it).
const pairRoleEnv = "MACHPORT_EMU_PAIR_ROLE"

func init() {
	if os.Getenv(pairRoleEnv) == "" {
		return
	}
	if err := runXprocPeer(peerSameNamePair); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

// peerSameNamePair receives one message on q and reports how its reply right came: the body
// says what is wrong, empty if it is a send right under q's own name.
func peerSameNamePair(parent, q, g uint32) error {
	var m Msg
	if err := xprocReceive(q, &m); err != nil {
		return err
	}
	problem := ""
	if m.Remote != q || uint8(m.Bits>>8) != typePortSend {
		problem = fmt.Sprintf("reply %#x type %d, want %#x type %d", m.Remote, uint8(m.Bits>>8), q, typePortSend)
	}
	return sendErr(Send(&Msg{Bits: dispCopySend, Remote: parent, ID: xDone, Body: []byte(problem)}, -1))
}

// MOVE_SEND destination with a COPY_SEND reply under one name, to a port of another process:
// xnu moves the one user reference and carries the right twice (ipc_kmsg_copyin_header,
// IPC_OBJECT_COPYIN_FLAGS_DEST_EXTRA_COPY), so the receiver gets its port's send right as the
// reply and the sender's name is gone.
func TestCopyinSameNamePairCrossProcess(t *testing.T) {
	parent, q, cmd, exited := startPairPeer(t)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS),
		Send(&Msg{Bits: dispMoveSend | dispCopySend<<8, Remote: q, Local: q, ID: 1}, 0))
	_, kr := Type(q)
	assert.Equal(t, int32(abi.KERN_INVALID_NAME), kr, "the one reference moved")

	var m Msg
	require.NoError(t, xprocReceive(parent, &m))
	require.Equal(t, int32(xDone), m.ID)
	assert.Empty(t, string(m.Body))
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the peer did not exit in 10 s")
	}
	require.True(t, cmd.ProcessState.Success(), "the peer: %v", cmd.ProcessState)
}

// A MAKE_SEND carried to another process in a send that fails with MACH_SEND_NO_BUFFER: its
// right was made into a channel (exportTo), whose hang-up retires it when the failed send lets
// go; no-senders must not fire for it, as in TestCopyinNoBufferMakeSendFiresNoSenders.
func TestCopyinNoBufferMakeSendCrossProcess(t *testing.T) {
	_, q, _, _ := startPairPeer(t)
	notify := newTestPort(t, 0)
	port, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1) })
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 1, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)

	failMemfds(t)
	data := make([]byte, 100)
	require.Equal(t, int32(abi.MACH_SEND_NO_BUFFER), Send(&Msg{Bits: dispCopySend, Remote: q, ID: 1,
		Descs: []Desc{{Name: port, Disp: dispMakeSend}, {Memory: true, Data: data, Size: uint32(len(data)),
			Copy: abi.MACH_MSG_VIRTUAL_COPY}}}, 0))
	memfdCreate = unix.MemfdCreate
	assert.Empty(t, drainIDs(notify), "the failed send made no send right: no no-senders")

	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(port, port, dispMakeSend))
	require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(port))
	assert.Equal(t, []int32{abi.MACH_NOTIFY_NO_SENDERS}, drainIDs(notify), "still armed for a real one")
}

// startPairPeer starts the peer, which names q, a port of its own the test has the only send
// right to (one user reference), and waits for one message on it. exited is closed once it
// has exited, with cmd's ProcessState set.
func startPairPeer(t *testing.T) (parent, q uint32, cmd *exec.Cmd, exited <-chan struct{}) {
	t.Helper()
	parent = newTestPort(t, 0)
	cmd, exited, q, _ = startRolePeer(t, pairRoleEnv+"=1", parent)
	refs, kr := GetRefs(q, abi.MACH_PORT_RIGHT_SEND)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, uint32(1), refs)
	return parent, q, cmd, exited
}
