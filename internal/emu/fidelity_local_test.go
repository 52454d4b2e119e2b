//go:build linux

package emu

import (
	"bytes"
	"context"
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// Messages sent inside the port's own process, the send rights that stay there, and the
// resources their sends use behave as on xnu: what a queued message holds, when notifications
// come, and what a send that waits or times out keeps.

// tooLarge receives from name with a buffer too small for any message and MACH_RCV_LARGE: the
// message must stay queued as it was (xnu's ipc_mqueue_select_on_thread leaves the kmsg on the
// queue and only reports its size).
func tooLarge(t *testing.T, name uint32) {
	t.Helper()
	var out Msg
	size := func(ports, mems, body int) int { return 1 << 10 }
	_, kr := Receive(context.Background(), name, 0, size, true, 0, &out)
	require.Equal(t, int32(abi.MACH_RCV_TOO_LARGE), kr)
}

// A local message left queued by MACH_RCV_TOO_LARGE (with MACH_RCV_LARGE) keeps its place under
// the queue limit: it never left the queue (xnu's ipc_mqueue_select_on_thread), so the next send
// with a zero timeout times out.
func TestTooLargeLocalMessageKeepsQueueSlot(t *testing.T) {
	port := newTestPort(t, 1)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1}, 0))
	tooLarge(t, port)
	require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 2}, 0),
		"the queue (limit 1) still holds message 1")
}

// A local message left queued by MACH_RCV_TOO_LARGE keeps the send right it holds: no-senders
// waits until it is received, as a queued kmsg keeps its destination's send right until
// ipc_kmsg_copyout_header releases it (ipc_object_copyout_dest).
func TestTooLargeLocalMessageKeepsItsSendRight(t *testing.T) {
	port, notify := noSendersWatched(t, 0)
	var kr int32
	// The only send right moves into the message sent through it.
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSend, Remote: port, ID: 1}, 0))
	_, kr = tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "the queued message holds the send right")
	tooLarge(t, port)
	_, kr = tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "the message is still queued, with its send right")
	require.Equal(t, int32(1), receiveWithin(t, port).ID)
	require.Equal(t, int32(abi.MACH_NOTIFY_NO_SENDERS), receiveWithin(t, notify).ID)
}

// mach_port_peek of a local message leaves it queued with the send right it holds: no-senders
// does not fire (xnu's ipc_mqueue_peek_locked only looks).
func TestPeekLocalMessageKeepsItsSendRight(t *testing.T) {
	port, notify := noSendersWatched(t, 0)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSend, Remote: port, ID: 1}, 0))
	pk, kr := Peek(port, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(1), pk.ID)
	_, kr = tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "the peeked message is still queued, with its send right")
}

// A send right that comes back through a channel while its port's receive right travels inside
// this process is local again, and the receive right joins its name: messages through that name,
// by COPY_SEND or MAKE_SEND, arrive in the order sent, as in xnu's one FIFO per port.
func TestSendRightReturnedWhileReceiveTravelsKeepsOrder(t *testing.T) {
	q := newTestPort(t, 0)
	remoteQ := remoteHolder(t, q)
	t.Cleanup(func() { Deallocate(remoteQ) })
	carrier := newTestPort(t, 0)
	p, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)

	// P's send right goes out through a channel (as to another process) and waits in q.
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: remoteQ, ID: 1,
		Descs: []Desc{{Name: p, Disp: dispMoveSend}}}, 0))
	// P's receive right travels inside the process.
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: carrier, ID: 2,
		Descs: []Desc{{Name: p, Disp: dispMoveReceive}}}, 0))
	// The send right comes back, then the receive right.
	got := receiveWithin(t, q)
	require.Equal(t, int32(1), got.ID)
	send := got.Descs[0].Name
	got = receiveWithin(t, carrier)
	require.Equal(t, int32(2), got.ID)
	recvName := got.Descs[0].Name
	require.Equal(t, send, recvName, "the receive right joins the name of the port's send right")
	t.Cleanup(func() { Destruct(recvName, -int32(refsOf(t, recvName)), 0) })

	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: send, ID: 10}, 0))
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMakeSend, Remote: send, ID: 11}, 0))
	first := receiveWithin(t, recvName).ID
	second := receiveWithin(t, recvName).ID
	require.Equal(t, []int32{10, 11}, []int32{first, second}, "one sender's messages on one name keep their order")
}

// A send that waits for room in a full queue keeps its pooled memfd (its message already names
// the slot's read-only description): trimPools does not close the slot under it however long it
// waits, and the message arrives with the memory sent. (The idle time is not waited for: the
// pool's last use is set back, as poolIdle of waiting would leave it.)
func TestPooledMemfdOfAWaitingSendIsNotClosed(t *testing.T) {
	idleClosed(t) // the pool the send made outlives the test until poolIdle
	port := newTestPort(t, 1)
	remote := remoteHolder(t, port)
	t.Cleanup(func() { Deallocate(remote) })
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: remote, ID: 1}, 0))

	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i*7 + 1)
	}
	done := make(chan int32, 1)
	go func() {
		done <- Send(&Msg{Bits: dispCopySend, Remote: remote, ID: 2, Descs: []Desc{{Memory: true, Data: data,
			Addr: uintptr(unsafe.Pointer(&data[0])), Size: uint32(len(data)), Copy: abi.MACH_MSG_VIRTUAL_COPY}}}, -1)
	}()
	sp.mu.Lock()
	ctr := sp.entries[remote].send.ctr
	sp.mu.Unlock()
	for atomic.LoadInt32(ctr.waiting()) == 0 {
		runtime.Gosched() // the sender waits for room, its memory copied into a pooled memfd
	}
	pools.Lock()
	for k := range pools.used {
		pools.used[k] = time.Time{}
	}
	pools.Unlock()
	trimPools()
	// Whatever the process opens next may take the closed numbers.
	other := make([]int, 2)
	for i := range other {
		fd, err := unix.MemfdCreate("other", unix.MFD_CLOEXEC)
		require.NoError(t, err)
		require.NoError(t, unix.Ftruncate(fd, int64(len(data))))
		other[i] = fd
		t.Cleanup(func() { unix.Close(fd) })
	}
	require.Equal(t, int32(1), receiveWithin(t, port).ID)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), <-done, "the waiting send goes")
	got := receiveWithin(t, port)
	require.Equal(t, int32(2), got.ID)
	require.Len(t, got.Descs, 1)
	mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), got.Descs[0].Addr)), got.Descs[0].Size)
	require.True(t, bytes.Equal(data, mem), "the received memory is what was sent")
	VMDeallocate(got.Descs[0].Addr, int(got.Descs[0].Size))
}

// When the last send right goes in the port's own process, no-senders is queued at once, also for
// a right that was once carried out (its channel's write end, kept by the local right, closes
// with it, and no copy is left elsewhere). The release is done under sp.mu, so the monitor's
// report of the hang-up cannot come first.
func TestNoSendersIsSynchronousAfterARightWasCarriedOut(t *testing.T) {
	port, notify := noSendersWatched(t, 0)
	_, ok := ChannelFD(port) // the channel it gets when carried to another process (gone since)
	require.True(t, ok)

	sp.mu.Lock()
	sp.dropSend(sp.entries[port], 1) // the last send right, in the port's own process
	queued := len(sp.entries[notify].recv.local)
	sp.mu.Unlock()
	require.Equal(t, 1, queued, "no-senders is queued when the last send right goes")
}

// A message on a send-once right (here MAKE_SEND_ONCE as its destination: the local queue)
// destroyed unreceived (a receive too small, without MACH_RCV_LARGE) destroys that send-once
// right, which sends the port MACH_NOTIFY_SEND_ONCE (xnu's ipc_kmsg_clean,
// ipc_object_destroy_dest: ipc_notify_send_once).
func TestDestroyedSendOnceMessageNotifies(t *testing.T) {
	port := newTestPort(t, 0)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMakeSendOnce, Remote: port, ID: 1}, 0))
	var out Msg
	_, kr := Receive(context.Background(), port, 0, func(int, int, int) int { return 1 << 10 }, false, 0, &out)
	require.Equal(t, int32(abi.MACH_RCV_TOO_LARGE), kr, "the message is destroyed")
	m, kr := tryReceiveNow(port)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr, "the destroyed send-once right notifies its port")
	require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), m.ID)
}

// A pooled memfd is free again once its message is received, also when copyLiveMax received
// copies are out (the receiver copies into fresh memory then, rather than mapping the memfd,
// whose lock on the pool's one read-only description nothing would release): no slot stays
// locked after every message's memory is deallocated.
func TestPooledMemfdReleasedPastCopyLiveMax(t *testing.T) {
	idleClosed(t)
	name := newMemTestPort(t)
	const size = 40 << 10
	data := make([]byte, size)
	send := func() *Msg {
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: name, ID: 1,
			Descs: []Desc{{Memory: true, Data: data, Size: size, Copy: abi.MACH_MSG_VIRTUAL_COPY}}}, 0))
		return receiveWithin(t, name)
	}
	var held []*Msg
	for range copyLiveMax {
		held = append(held, send())
	}
	past := send() // copyLiveMax copies are out: this one is copied into fresh memory
	for _, m := range append(held, past) {
		require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(m.Descs[0].Addr, int(m.Descs[0].Size)))
	}
	sp.mu.Lock()
	key := sp.entries[name].send
	sp.mu.Unlock()
	pools.Lock()
	defer pools.Unlock()
	for i, s := range pools.byChan[key] {
		require.True(t, unlocked(s.fd), "slot %d is free once every message's memory is deallocated", i)
	}
}

// A send with MAKE_SEND as its destination that times out on a full queue hands the sender the
// send right its copy-in made (xnu's ipc_kmsg_copyout_pseudo), so a send right exists throughout
// and an armed no-senders request does not fire.
func TestTimedOutMakeSendFiresNoNoSenders(t *testing.T) {
	notify := newTestPort(t, 0)
	port, kr := Construct(0, 0, 0) // a receive right, no send right
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(port, -int32(refsOf(t, port)), 0) })
	require.Equal(t, int32(abi.KERN_SUCCESS), SetAttributes(port, abi.MACH_PORT_LIMITS_INFO, []int32{0}))
	// sync 1: a request with sync <= mscount on a port without send rights fires at once (xnu's
	// ipc_port_nsrequest); armed, it fires whenever the last send right goes.
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 1, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	m := &Msg{Bits: dispMakeSend, Remote: port, ID: 1}
	require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(m, 0), "the queue takes nothing (limit 0)")
	require.Equal(t, port, m.Remote)
	require.Equal(t, uint32(1), refsOf(t, port), "the send right made is handed back")
	_, kr = tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "a send right existed all along: no no-senders")
}

// A no-senders request's sync counts only when the request is made: armed (the port had send
// rights then), it fires when the last send right goes, whatever the make-send count (xnu's
// ipc_port_release_send_and_unlock and ipc_notify_no_senders_prepare look at no sync).
func TestNoSendersArmedWithAHighSyncFiresWhenTheLastSendRightGoes(t *testing.T) {
	port, notify := noSendersWatched(t, 5) // make-send count 1
	var kr int32
	_, kr = tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "armed: the port has a send right")
	require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(port, abi.MACH_PORT_RIGHT_SEND, -1))
	n, kr := tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr, "the last send right went")
	require.Equal(t, int32(abi.MACH_NOTIFY_NO_SENDERS), n.ID)
	require.Equal(t, uint32(1), binary.LittleEndian.Uint32(n.Body[8:]), "the make-send count")
}

// A message on a send-once right that came through a channel (a send-once right made by
// mach_port_extract_right, which has a channel of its own) and is destroyed unreceived also
// sends its port MACH_NOTIFY_SEND_ONCE, once (xnu's ipc_object_destroy_dest).
func TestDestroyedSendOnceChannelMessageNotifies(t *testing.T) {
	port := newTestPort(t, 0)
	once, _, kr := ExtractRight(port, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	sp.mu.Lock()
	isChannel := sp.entries[once].sonce.local == nil && sp.entries[once].sonce.fd >= 0
	sp.mu.Unlock()
	require.True(t, isChannel, "the send-once right is a channel")
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: once, ID: 1}, 0))
	var out Msg
	_, kr = Receive(context.Background(), port, 0, func(int, int, int) int { return 1 << 10 }, false, -1, &out)
	require.Equal(t, int32(abi.MACH_RCV_TOO_LARGE), kr, "the message is destroyed")
	m, kr := tryReceiveNow(port)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr, "the destroyed send-once right notifies its port")
	require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), m.ID)
	_, kr = tryReceiveNow(port)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "once")
}

// No-senders waits while a copy of a carried-out right's write end lives on elsewhere (here a
// dup, as another process holds it): releasing the last send right of the port's own process
// does not fire it; the copy's hang-up does.
func TestNoSendersWaitsForACopyCarriedOut(t *testing.T) {
	port, notify := noSendersWatched(t, 0)
	fd, ok := ChannelFD(port)
	require.True(t, ok)
	copied, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	require.NoError(t, err)

	sp.mu.Lock()
	sp.dropSend(sp.entries[port], 1)
	queued := len(sp.entries[notify].recv.local)
	sp.mu.Unlock()
	require.Equal(t, 0, queued, "a copy of the right lives on")
	require.NoError(t, unix.Close(copied))
	require.Equal(t, int32(abi.MACH_NOTIFY_NO_SENDERS), receiveWithin(t, notify).ID, "the copy went")
}

// noSendersWatched makes a port with a send right (make-send count 1) and a no-senders request
// with sync, sent to a port of its own, and returns both names.
func noSendersWatched(t *testing.T, sync uint32) (port, notify uint32) {
	t.Helper()
	notify = newTestPort(t, 0)
	port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(port, 0, 0) })
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, sync, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	return port, notify
}
