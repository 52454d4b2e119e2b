//go:build linux

package emu

import (
	"context"
	"sync"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// A port that no other process holds, and that nobody waits on, costs no fd: 100,000 receive
// rights fit in a process whose default limit is 1,024 fds. Each still works as a port: a
// notification queued on one is received, and one that gets a send right sends to itself.
func TestManyPortsCostNoFD(t *testing.T) {
	const ports = 100_000
	Destruct(newTestPort(t, 0), -1, 0) // starts what stays: the table server, the monitor
	fds := openFiles(t)                // earlier tests' lanes and pools may close meanwhile: see fdSnapshot
	names := make([]uint32, 0, ports)
	defer func() {
		for _, n := range names {
			ModRefs(n, abi.MACH_PORT_RIGHT_RECEIVE, -1)
		}
	}()
	for range ports {
		n, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
		require.Equal(t, int32(abi.KERN_SUCCESS), kr)
		names = append(names, n)
	}
	require.Empty(t, newSince(t, fds), "the ports hold no fd")

	// A no-senders request fires at once (the port has no senders) and queues locally.
	first, last := names[0], names[len(names)-1]
	_, kr := RequestNotification(first, abi.MACH_NOTIFY_NO_SENDERS, 0, last, dispMakeSendOnce)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.MACH_NOTIFY_NO_SENDERS), receiveWithin(t, last).ID)

	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(first, first, dispMakeSend))
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: first, ID: 5}, 0))
	require.Equal(t, int32(5), receiveWithin(t, first).ID)
	require.Equal(t, int32(abi.KERN_SUCCESS), Deallocate(first))
	for _, n := range names {
		require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(n, abi.MACH_PORT_RIGHT_RECEIVE, -1))
	}
	names = names[:0]
	require.Empty(t, newSince(t, fds), "no fd is left open")
}

// Several receivers drain one port at once: every message is received exactly once, whichever
// channel it came on (a send right used by two goroutines, and send-once rights made by the sends).
func TestReceiversDrainOnePort(t *testing.T) {
	const receivers, perSender = 4, 500
	port := newTestPort(t, 0)
	got := make(chan int32, 4*perSender)
	var wg sync.WaitGroup
	for range receivers {
		wg.Go(func() {
			for {
				var out Msg
				size := func(ports, mems, body int) int { return 0 }
				_, kr := Receive(context.Background(), port, 1<<20, size, false, -1, &out)
				if kr != abi.MACH_MSG_SUCCESS {
					return // the port was destroyed at the end
				}
				if out.ID == 0 {
					continue
				}
				got <- out.ID
			}
		})
	}
	var senders sync.WaitGroup
	for s := range 2 {
		senders.Go(func() {
			for i := range perSender {
				id := int32(s*perSender + i + 1)
				require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: id}, -1))
			}
		})
	}
	senders.Go(func() {
		for i := range perSender {
			id := int32(2*perSender + i + 1)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispMakeSendOnce, Remote: port, ID: id}, -1))
		}
	})
	senders.Wait()
	seen := map[int32]bool{}
	for range 3 * perSender {
		id := <-got
		require.False(t, seen[id], "message %d received twice", id)
		seen[id] = true
	}
	Destruct(port, -1, 0)
	wg.Wait()
	require.Len(t, seen, 3*perSender)
}
