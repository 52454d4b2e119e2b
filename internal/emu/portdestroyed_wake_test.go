//go:build linux

package emu

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// A receive blocked on a port whose receive right is destroyed while a port-destroyed request
// sends the right to another port returns MACH_RCV_PORT_CHANGED at once, as xnu's
// ipc_port_destroy wakes it (the port goes in limbo as in a move, and waiters restart): in
// recvmsg on the port's one channel, and in epoll on a port without channels. Before, the first
// waited for its 2 s recvmsg timeout and the second for ever.
func TestPortDestroyedWakesBlockedReceiver(t *testing.T) {
	restore := SetPolling(0, time.Hour) // the blocking waits themselves
	defer restore()
	for _, tc := range []struct {
		name     string
		withChan bool
	}{{"recvmsg", true}, {"epoll", false}} {
		t.Run(tc.name, func(t *testing.T) {
			notify, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			defer ModRefs(notify, abi.MACH_PORT_RIGHT_RECEIVE, -1)
			name, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)
			if tc.withChan {
				require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(name, name, dispMakeSend))
				defer Deallocate(name)
				_, ok := ChannelFD(name)
				require.True(t, ok)
			}
			_, kr = RequestNotification(name, abi.MACH_NOTIFY_PORT_DESTROYED, 0, notify, dispMakeSendOnce)
			require.Equal(t, int32(abi.KERN_SUCCESS), kr)

			waits0 := DirectWaits()
			got := receiveInBackground(name)
			for ThreadWaits() == 0 {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(10 * time.Millisecond)
			if tc.withChan {
				require.Less(t, waits0, DirectWaits(), "the receive waits in recvmsg")
			} else {
				require.Equal(t, waits0, DirectWaits(), "the receive waits in epoll")
			}
			start := time.Now()
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(name, abi.MACH_PORT_RIGHT_RECEIVE, -1))
			select {
			case r := <-got:
				require.Equal(t, int32(abi.MACH_RCV_PORT_CHANGED), r.kr)
				require.Less(t, time.Since(start), time.Second, "woken by its 2 s recvmsg timeout, not by the destroy")
			case <-time.After(5 * time.Second):
				ModRefs(notify, abi.MACH_PORT_RIGHT_RECEIVE, -1) // destroys the right in transit: wakes it
				<-got
				t.Fatal("the receive blocked on the destroyed receive right was not woken in 5 s")
			}
			// The right travelled to notify in the notification.
			var out Msg
			size := func(ports, mems, body int) int { return 0 }
			_, kr = Receive(context.Background(), notify, 1024, size, false, 0, &out)
			require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
			require.Equal(t, int32(abi.MACH_NOTIFY_PORT_DESTROYED), out.ID)
			require.Len(t, out.Descs, 1)
			require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(out.Descs[0].Name, abi.MACH_PORT_RIGHT_RECEIVE, -1))
		})
	}
}
