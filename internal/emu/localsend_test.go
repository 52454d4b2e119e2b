//go:build linux

package emu

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A send right in its port's own process costs no fd: 100,000 ports, each with a send right
// (the limit is 20,000 fds here; a channel per right took three), hold no fd, and each works:
// a message through the first and the last arrives, and so does one that carries a send right
// and a receive right to another of them. Releasing them all leaves no fd open.
func TestLocalSendRightsCostNoFD(t *testing.T) {
	const ports = 100_000
	Destruct(newTestPort(t, 0), -1, 0) // starts what stays: the table server, the monitor
	fds := openFiles(t)
	names := make([]uint32, 0, ports)
	defer func() {
		for _, n := range names {
			Destruct(n, -1, 0)
		}
	}()
	for range ports {
		n, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		names = append(names, n)
	}
	require.Empty(t, newSince(t, fds), "the ports and their send rights hold no fd")

	first, mid, last := names[0], names[ports/2], names[len(names)-1]
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: first, ID: 5}, 0))
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: last, ID: 6, Descs: []Desc{
		{Name: first, Disp: dispCopySend}, {Name: mid, Disp: dispMakeSend}}}, 0))
	require.Empty(t, newSince(t, fds), "queued messages and the rights they carry hold no fd")
	require.Equal(t, int32(5), receiveWithin(t, first).ID)
	got := receiveWithin(t, last)
	require.Equal(t, int32(6), got.ID)
	require.Equal(t, []Desc{{Name: first, Disp: typePortSend}, {Name: mid, Disp: typePortSend}}, got.Descs,
		"the carried send rights coalesce with the names of their ports")
	refs, kr := GetRefs(mid, abi.MACH_PORT_RIGHT_SEND)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, uint32(2), refs)
	require.Empty(t, newSince(t, fds))
	for _, n := range names {
		require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(n, -int32(refsOf(t, n)), 0))
	}
	names = names[:0]
	require.Empty(t, newSince(t, fds), "no fd is left open")
}

func refsOf(t *testing.T, name uint32) uint32 {
	refs, kr := GetRefs(name, abi.MACH_PORT_RIGHT_SEND)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	return refs
}

// remoteHolder gives this process what another process holds after it received the send right
// name: a name for the right whose channel and counter are the ones carried out (dups of them),
// so that sends through it take the path a peer's sends take.
func remoteHolder(t *testing.T, name uint32) uint32 {
	t.Helper()
	fd, ok := ChannelFD(name)
	require.True(t, ok)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	src := sp.entries[name].send
	w, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	require.NoError(t, err)
	cfd, err := unix.FcntlInt(uintptr(src.ctr.fd), unix.F_DUPFD_CLOEXEC, 0)
	require.NoError(t, err)
	c := &sendChan{fd: w, id: src.id, refs: 1, ctr: newCounterRef(cfd), ownsCtr: true}
	e := sp.newName() // not coalesced: the peer's own name
	e.send, e.sendRefs, e.id = c, 1, c.id
	return e.name
}

// The queue limit is one count for the port's local send rights and for the senders through its
// channel: messages of either fill the queue for both, a sender of either kind waits for room
// and gets it when a message is received, and a timed-out send is handed back with its rights.
func TestLocalAndRemoteSendersShareQueueLimit(t *testing.T) {
	port := newTestPort(t, 2)
	remote := remoteHolder(t, port)
	t.Cleanup(func() { Deallocate(remote) })
	carried := newTestPort(t, 0)

	send := func(dest uint32, id int32, timeout time.Duration) int32 {
		return Send(&Msg{Bits: dispCopySend, Remote: dest, ID: id}, timeout)
	}
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), send(port, 1, 0))
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), send(remote, 2, 0))
	require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), send(port, 3, 0), "a remote message counts for a local sender")
	require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), send(remote, 3, 0), "a local message counts for a remote sender")
	// A timed-out local send is handed back: the send right it moved is the sender's again.
	m := &Msg{Bits: dispCopySend, Remote: port, ID: 3, Descs: []Desc{{Name: carried, Disp: dispMoveSend}}}
	require.Equal(t, int32(abi.MACH_SEND_TIMED_OUT), Send(m, time.Millisecond))
	require.Equal(t, []Desc{{Name: carried, Disp: typePortSend}}, m.Descs)
	require.Equal(t, uint32(1), refsOf(t, carried))

	var status [abi.MACH_PORT_RECEIVE_STATUS_COUNT]int32
	_, kr := GetAttributes(port, abi.MACH_PORT_RECEIVE_STATUS, status[:])
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(2), status[4], "two messages queued")

	// Blocked senders of both kinds each get a slot as messages are received.
	done := make(chan int32, 2)
	go func() { done <- send(port, 4, -1) }()
	go func() { done <- send(remote, 5, -1) }()
	seen := map[int32]bool{}
	for range 4 {
		seen[receiveWithin(t, port).ID] = true
	}
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), <-done)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), <-done)
	require.Equal(t, map[int32]bool{1: true, 2: true, 4: true, 5: true}, seen)
	_, kr = tryReceiveNow(port)
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
}

// No-senders fires when the last local send right is gone, and not before: a message queued
// through a send right holds it until it is received (as in Mach), and a right carried in a
// queued message counts too.
func TestLocalNoSenders(t *testing.T) {
	notify := newTestPort(t, 0)
	port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	t.Cleanup(func() { Destruct(port, 0, 0) })
	carrier := newTestPort(t, 0)
	_, kr = RequestNotification(port, abi.MACH_NOTIFY_NO_SENDERS, 0, notify, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)

	noNotification := func(why string) {
		t.Helper()
		_, kr := tryReceiveNow(notify)
		require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr, why)
	}
	// A message through the right, and a copy of the right in another queued message.
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1}, 0))
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: carrier, ID: 2,
		Descs: []Desc{{Name: port, Disp: dispCopySend}}}, 0))
	require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(port, abi.MACH_PORT_RIGHT_SEND, -1))
	noNotification("the queued messages hold send rights")
	require.Equal(t, int32(1), receiveWithin(t, port).ID)
	noNotification("the carried right still exists")
	got := receiveWithin(t, carrier)
	require.Equal(t, port, got.Descs[0].Name, "the carried right comes back under the port's name")
	noNotification("the carried right is named")
	require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(port, abi.MACH_PORT_RIGHT_SEND, -1))
	n := receiveWithin(t, notify)
	require.Equal(t, int32(abi.MACH_NOTIFY_NO_SENDERS), n.ID)
}

// When a port dies, this process's send rights to it become a dead name at once, and a
// dead-name request on them fires, also when the receive right was away from their name (moved
// in a message that is destroyed with it).
func TestLocalSendRightsDieWithPort(t *testing.T) {
	notify := newTestPort(t, 0)
	for _, moved := range []bool{false, true} {
		port, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		_, kr = RequestNotification(port, abi.MACH_NOTIFY_DEAD_NAME, 1, notify, dispMakeSendOnce)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		if moved {
			carrier, kr := Construct(abi.MPO_INSERT_SEND_RIGHT, 0, 0)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: carrier, ID: 1,
				Descs: []Desc{{Name: port, Disp: dispMoveReceive}}}, 0))
			typ, _ := Type(port)
			require.Equal(t, uint32(abi.MACH_PORT_TYPE_SEND|abi.MACH_PORT_TYPE_DNREQUEST), typ)
			require.Equal(t, int32(abi.KERN_SUCCESS), Destruct(carrier, -1, 0)) // the message dies with it
		} else {
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1))
		}
		sp.mu.Lock()
		e := sp.entries[port]
		require.NotNil(t, e)
		require.Nil(t, e.send, "the send right is a dead name without anyone looking")
		sp.mu.Unlock()
		n := receiveWithin(t, notify)
		require.Equal(t, int32(abi.MACH_NOTIFY_DEAD_NAME), n.ID)
		require.Equal(t, int32(abi.MACH_SEND_INVALID_DEST), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 2}, 0))
		// One reference of the dead name, and one the notification carries.
		require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(port, abi.MACH_PORT_RIGHT_DEAD_NAME, -2))
	}
}

// Rights carried in a message sent inside the process travel as references: a send-once right
// made for the reply is used, or dropped unused (MACH_NOTIFY_SEND_ONCE), a send right carried
// out to another process works there, and one sender's messages keep their order.
func TestLocalMessageRights(t *testing.T) {
	server := newTestPort(t, 0)
	reply := newTestPort(t, 0)
	for i := range 3 {
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend | dispMakeSendOnce<<8,
			Remote: server, Local: reply, ID: int32(10 + i)}, 0))
	}
	for i := range 3 {
		req := receiveWithin(t, server)
		require.Equal(t, int32(10+i), req.ID, "in order")
		require.Equal(t, uint32(typePortSendOnce|typePortSend<<8), req.Bits&abi.MACH_MSGH_BITS_PORTS_MASK)
		if i == 1 {
			require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(req.Remote))
			require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), receiveWithin(t, reply).ID)
			continue
		}
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce, Remote: req.Remote, ID: 20 + int32(i)}, 0))
		require.Equal(t, int32(20+i), receiveWithin(t, reply).ID)
	}
}

// No channel is set up under the space lock: a message to another process that makes a lane and
// carries a local send right out, a send-once right extracted, and a lane right adopted by a
// channel of its own all make their sockets with sp.mu free.
func TestNoChannelSetupUnderLock(t *testing.T) {
	var setups, locked atomic.Int64
	channelSetupHook = func() {
		setups.Add(1)
		// The caller holds sp.mu if it stays taken: another goroutine holds it only briefly.
		for deadline := time.Now().Add(time.Second); !sp.mu.TryLock(); runtime.Gosched() {
			if time.Now().After(deadline) {
				locked.Add(1)
				return
			}
		}
		sp.mu.Unlock()
	}
	defer func() { channelSetupHook = nil }()

	reply := newTestPort(t, 0)
	carried := newTestPort(t, 0)
	lfd, _, tok := laneFromPeerCarrying(t, reply, carried)
	before := setups.Load()
	require.Positive(t, before, "the lane and the carried right's channel were made")
	so, _, kr := ExtractRight(reply, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(so))
	require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), receiveWithin(t, reply).ID)
	// The peer passes its lane right on: the port adopts the channel that now carries it.
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	require.NoError(t, unix.SetsockoptInt(fds[0], unix.SOL_SOCKET, unix.SO_PASSCRED, 1))
	require.NoError(t, laneCtl(lfd, laneAdopt, tok, fds[0]))
	unix.Close(fds[0])
	_, kr = tryReceiveNow(reply) // reads the adopt
	require.Equal(t, int32(abi.MACH_RCV_TIMED_OUT), kr)
	unix.Close(fds[1]) // the right is dropped unused on its own channel
	require.Equal(t, int32(abi.MACH_NOTIFY_SEND_ONCE), receiveWithin(t, reply).ID)
	require.Greater(t, setups.Load(), before+1, "the extracted right's and the adopted right's channels")
	require.Zero(t, locked.Load(), "channel setups made with sp.mu held")
}

// laneFromPeerCarrying is laneFromPeer with a copy of the local send right carried in the
// request, which needs its channel made for the peer.
func laneFromPeerCarrying(t *testing.T, reply, carried uint32) (lfd int, key, tok uint64) {
	t.Helper()
	server := newTestPort(t, 0)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { unix.Close(fds[0]) })
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), sendWithReplyFD(server, 7, []byte("req"), fds[1], newPortID()))
	unix.Close(fds[1])
	req := receiveWithin(t, server)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMoveSendOnce | dispMakeSendOnce<<8,
		Remote: req.Remote, Local: reply, ID: 8, Descs: []Desc{{Name: carried, Disp: dispCopySend}}}, -1))
	d, got := readDatagram(t, fds[0])
	require.Equal(t, uint8(kindLane), d.reply.kind)
	require.Len(t, got, 3, "the lane's write end, the carried right's channel and its counter")
	require.Equal(t, uint8(typePortSend), d.descs[0].typ)
	for _, fd := range got[1:] {
		unix.Close(fd)
	}
	t.Cleanup(func() { unix.Close(got[0]) })
	return got[0], d.reply.laneKey, d.reply.token
}

// A message sent inside the process carries out-of-line memory (copied, and a region moved whole)
// and a body larger than a datagram's inline room as a channel's receiver would get them, and
// leaves no fd behind once received and released (but the pooled memfd of the copy, for a
// moment).
func TestLocalMessageMemory(t *testing.T) {
	port := newMemTestPort(t)
	warmUp(t)
	fds := openFiles(t)
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	addr, kr := VMAllocate(1 << 20)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	region := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), addr)), 1<<20)
	copy(region, data)
	body := make([]byte, inlineBodyMax+100)
	body[len(body)-1] = 9
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1, Body: body, Descs: []Desc{
		{Memory: true, Data: data, Addr: uintptr(unsafe.Pointer(&data[0])), Size: uint32(len(data)), Copy: abi.MACH_MSG_VIRTUAL_COPY},
		{Memory: true, Data: region, Addr: addr, Size: 1 << 20, Dealloc: true, Copy: abi.MACH_MSG_VIRTUAL_COPY},
	}}, 0))
	got := receiveWithin(t, port)
	require.Equal(t, body, got.Body)
	require.Len(t, got.Descs, 2)
	for i, d := range got.Descs {
		require.True(t, d.Memory)
		mem := unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), d.Addr)), d.Size)
		require.Equal(t, data, mem[:len(data)], "descriptor %d", i)
		require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(d.Addr, int(d.Size)))
	}
	// The send's pooled memfd closes once its pool has been idle for poolIdle.
	requireNoNewFDs(t, fds, "no fd is left")
}
