//go:build linux

package emu

import (
	"bytes"
	"context"
	"encoding/binary"
	"golang.org/x/sys/unix"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

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

// Review finding [MEDIUM]: a local message left in the queue by MACH_RCV_TOO_LARGE (with
// MACH_RCV_LARGE) gives up its queue slot: the queue then takes one message more than its limit.
// On xnu the message never left the queue, so a second send with a zero timeout times out.
func TestReviewTooLargeLocalMessageKeepsQueueSlot(t *testing.T) {
	port := newTestPort(t, 1)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1}, 0))
	tooLarge(t, port)
	require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 2}, 0),
		"the queue (limit 1) still holds message 1")
}

// Review finding [MEDIUM]: a local message left in the queue by MACH_RCV_TOO_LARGE gives up the
// send right it holds (tryPort's dequeued, then unget puts it back without it): no-senders fires
// while the message that holds the last send right is still queued. On xnu the queued kmsg keeps
// its destination's send right until it is received (ipc_object_copyout_dest).
func TestReviewTooLargeLocalMessageKeepsItsSendRight(t *testing.T) {
	notify := newTestPort(t, 0)
	port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(port, 0, 0) })
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 0, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
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

// Review finding [MEDIUM]: mach_port_peek on a local message takes it off the queue and puts it
// back (tryPort, then unget) without the send right it holds: no-senders fires while the message
// holding the last send right is still queued. xnu's ipc_mqueue_peek_locked only looks.
func TestReviewPeekLocalMessageKeepsItsSendRight(t *testing.T) {
	notify := newTestPort(t, 0)
	port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(port, 0, 0) })
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 0, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSend, Remote: port, ID: 1}, 0))
	pk, kr := Peek(port, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(1), pk.ID)
	_, kr = tryReceiveNow(notify)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, "the peeked message is still queued, with its send right")
}

// Review finding [MEDIUM]: a send right to a port of this process that comes back while the
// port's receive right is travelling (moved in a message inside the process) stays a channel,
// and the receive right, named later, joins that name: the name then holds the port's receive
// right and a channel send right. Messages through it (COPY_SEND) go into the socket, messages
// made with MAKE_SEND on the same name go into the local queue, which a receive takes first, so
// one sender's two messages on one name arrive in the other order. (The docs: "A send right
// received for a port of this process is local again"; xnu keeps one FIFO.)
func TestReviewSendRightReturnedWhileReceiveTravelsKeepsOrder(t *testing.T) {
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

// Review finding [HIGH]: a send that waits for room in a full queue already holds its pooled
// memfd's read-only description (fillMemory runs before deliver waits), but the slot is no
// longer busy, so trimPools, finding the pool idle for poolIdle (the sender waits), closes the
// description under it. The send then passes a closed fd number, or one that something else
// opened meanwhile: the message fails, or carries another file. (The idle time is not waited
// for: the pool's last use is set back, as poolIdle of waiting would leave it.)
func TestReviewPooledMemfdOfAWaitingSendIsNotClosed(t *testing.T) {
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

// Review finding [LOW]: a local send right that was once carried out keeps its channel's write
// end (exportTo), so once every copy that went out is gone, releasing the last send right in the
// port's own process closes that write end and no-senders waits for the monitor to see the
// hang-up. The docs promise no-senders at once for rights held in the port's own process ("they
// come synchronously, as on macOS"). The release is done under sp.mu, so the monitor cannot
// answer first: at the moment the last send right goes, no-senders is not queued.
func TestReviewNoSendersIsSynchronousAfterARightWasCarriedOut(t *testing.T) {
	notify := newTestPort(t, 0)
	port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(port, 0, 0) })
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 0, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	_, ok := ChannelFD(port) // the channel it gets when carried to another process (gone since)
	require.True(t, ok)

	sp.mu.Lock()
	sp.dropSend(sp.entries[port], 1) // the last send right, in the port's own process
	queued := len(sp.entries[notify].recv.local)
	sp.mu.Unlock()
	require.Equal(t, 1, queued, "no-senders is queued when the last send right goes")
}

// Review finding [LOW]: a message sent on a send-once right (here MAKE_SEND_ONCE as its
// destination, which now goes into the local queue) that is destroyed unreceived (a receive too
// small without MACH_RCV_LARGE) destroys that send-once right, and on xnu destroying a send-once
// destination sends the port MACH_NOTIFY_SEND_ONCE (ipc_kmsg_clean, ipc_object_destroy_dest:
// ipc_notify_send_once). The emulation's destroy looks at no destination type: nothing comes.
func TestReviewDestroyedSendOnceMessageNotifies(t *testing.T) {
	port := newTestPort(t, 0)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMakeSendOnce, Remote: port, ID: 1}, 0))
	var out Msg
	_, kr := Receive(context.Background(), port, 0, func(int, int, int) int { return 1 << 10 }, false, 0, &out)
	require.Equal(t, int32(abi.MACH_RCV_TOO_LARGE), kr, "the message is destroyed")
	m, kr := tryReceiveNow(port)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr, "the destroyed send-once right notifies its port")
	require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), m.ID)
}

// Review finding [LOW]: with copyLiveMax received copies out, a receiver maps a pooled memfd
// instead of copying it (rxcopy.go), and nothing ever releases the lock the sender took on the
// pool's one read-only description (it lives on in the pool, so unmapping does not drop it): the
// slot stays locked after the memory is deallocated, and the pool loses it for good (four such
// messages and every later copy takes a fresh memfd).
func TestReviewMappedPooledMemfdIsReleased(t *testing.T) {
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
	mapped := send() // copyLiveMax copies are out: this one maps the pooled memfd
	for _, m := range append(held, mapped) {
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

// Review finding [LOW-MEDIUM]: a send with MAKE_SEND as its destination that times out on a full
// queue releases the send right the copy-in made before handBack makes it again, and the release
// is the port's last send right: no-senders fires, then the sender holds a send right all the
// same. On xnu the right made by the copy-in is the one handed back (ipc_kmsg_copyout_pseudo), so
// a send right exists throughout and no-senders does not fire.
func TestReviewTimedOutMakeSendFiresNoNoSenders(t *testing.T) {
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
	notify := newTestPort(t, 0)
	port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0) // make-send count 1
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(port, 0, 0) })
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 5, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
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
	notify := newTestPort(t, 0)
	port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(port, 0, 0) })
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 0, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
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
