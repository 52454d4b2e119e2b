//go:build linux

package emu

import (
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ReceiveBlocked reports whether a thread of this process is blocked in the kernel now on the
// receive right name's behalf: inside epoll_wait on the port's epoll fd, or inside recvmsg on
// one of its channels (receiveDirect). Tests use it to act only once a receive really waits,
// instead of sleeping. It reads /proc/self/task/*/syscall: a thread inside a system call shows
// its number and arguments there, a thread that is not shows "running".
func ReceiveBlocked(name uint32) bool {
	sp.mu.Lock()
	e := sp.entries[name]
	if e == nil || e.recv == nil {
		sp.mu.Unlock()
		return false
	}
	epfd, chans := e.recv.epfd, make(map[uint64]bool, len(e.recv.chans))
	for fd := range e.recv.chans {
		chans[uint64(fd)] = true
	}
	sp.mu.Unlock()
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/syscall")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue // "running"
		}
		nr, err1 := strconv.Atoi(f[0])
		fd, err2 := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		switch {
		case isEpollWait(nr) && epfd >= 0 && fd == uint64(epfd):
			return true
		case nr == unix.SYS_RECVMSG && chans[fd]:
			return true
		}
	}
	return false
}

// isEpollWait reports whether nr is a system call x/sys's EpollWait makes: epoll_wait where the
// architecture has it (amd64: 232, 386: 256), epoll_pwait everywhere else.
func isEpollWait(nr int) bool {
	switch runtime.GOARCH {
	case "amd64":
		return nr == 232 || nr == unix.SYS_EPOLL_PWAIT
	case "386":
		return nr == 256 || nr == unix.SYS_EPOLL_PWAIT
	}
	return nr == unix.SYS_EPOLL_PWAIT
}
