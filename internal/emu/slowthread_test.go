//go:build linux

package emu

import (
	"runtime"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A waiting thread that has not answered its wake-up signals by the last of directResignals
// has not ignored them if it can take SIGURG: it is slow to run (on a loaded machine a woken
// thread can wait tens of milliseconds for a CPU), and later waits still block in recvmsg and
// epoll_wait. Before, the signals' senders (resignal for a receiver blocked in recvmsg, an
// interrupter for a canceled wait) turned those waits off for the whole process there, as if
// SIGURG were ignored, and under load a test process's later receives parked instead
// (TestPortLeavesPollerWhenNotCrowded and mach's TestBlockedReceiveWakes failed: "the receive
// blocked in recvmsg"). Each case brings a sender to that last signal while the thread it
// signals can take SIGURG; a process that ignores SIGURG still turns the waits off
// (TestDirectWaitWithoutSIGURG, TestCanceledWaitWithoutSIGURG).
func TestUnansweredSignalsOfASlowThread(t *testing.T) {
	t.Run("resignal, a receiver blocked in recvmsg", func(t *testing.T) {
		noDirectOff(t)
		name := newTestPort(t, 0)
		_, ok := ChannelFD(name) // its one channel: a lone receiver blocks in recvmsg on it
		require.True(t, ok)
		directs := DirectWaits()
		got := receiveInBackground(name)
		var p *port
		for deadline := time.Now().Add(10 * time.Second); p == nil; time.Sleep(time.Millisecond) {
			require.True(t, time.Now().Before(deadline), "the receiver never blocked in recvmsg")
			sp.mu.Lock()
			if q := sp.entries[name].recv; DirectWaits() > directs && q.direct.active {
				p = q
			}
			sp.mu.Unlock()
		}
		sp.mu.Lock()
		gen := p.direct.gen
		sp.mu.Unlock()
		// Its last try, as if the receiver had answered none of the signals before.
		p.resignal(gen, directResignal, directResignals)
		require.False(t, directOff.Load(), "a thread that can take SIGURG turned direct waits off")
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(&Msg{Bits: dispCopySend, Remote: name, ID: 1}, -1))
		require.Equal(t, int32(abi.MACH_MSG_SUCCESS), (<-got).kr)
	})
	t.Run("interrupter, a canceled wait in epoll_wait", func(t *testing.T) {
		noDirectOff(t)
		// A thread of this process that can take SIGURG and never answers: the runtime's
		// handler ignores the signals, and the interrupter waits for an end that does not come
		// until it has sent them all.
		tids, release := make(chan int, 1), make(chan struct{})
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			tids <- unix.Gettid()
			<-release
		}()
		defer close(release)
		it := &interrupter{tid: <-tids}
		checks := deafChecks.Load()
		done := make(chan struct{})
		go func() {
			defer close(done)
			it.interrupt()
		}()
		// Wait (for the state: the signals are sent on a timer) until the interrupter has sent
		// its last signal and asked why it went unanswered, or has turned the waits off.
		for deadline := time.Now().Add(10 * time.Second); deafChecks.Load() == checks && !directOff.Load(); {
			require.True(t, time.Now().Before(deadline), "the interrupter never gave up")
			time.Sleep(time.Millisecond)
		}
		it.end()
		<-done
		require.False(t, directOff.Load(), "a thread that can take SIGURG turned canceled waits into parked ones")
	})
}

// noDirectOff requires direct waits to be on, and puts them on again after the test (a failure
// turns them off for the process).
func noDirectOff(t *testing.T) {
	require.False(t, directOff.Load())
	t.Cleanup(func() { directOff.Store(false) })
}
