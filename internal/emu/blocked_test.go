//go:build linux

package emu

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// ReceiveBlocked sees a receive inside the system call it blocks in, on a port without channels
// (epoll_wait) and on a port with one (recvmsg), and nothing before or after it.
func TestReceiveBlocked(t *testing.T) {
	for _, channel := range []bool{false, true} {
		port := newTestPort(t, 0)
		if channel {
			_, ok := ChannelFD(port)
			require.True(t, ok)
		}
		require.False(t, ReceiveBlocked(port), "no receive yet")
		done := make(chan int32, 1)
		go func() {
			var out Msg
			_, kr := Receive(context.Background(), port, 1<<10, func(int, int, int) int { return 0 }, false, -1, &out)
			done <- kr
		}()
		deadline := time.Now().Add(10 * time.Second)
		for !ReceiveBlocked(port) {
			require.False(t, time.Now().After(deadline), "the receive did not block")
			time.Sleep(time.Millisecond)
		}
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: port, ID: 1}, 0))
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), <-done)
		require.False(t, ReceiveBlocked(port), "the receive is over")
	}
}
