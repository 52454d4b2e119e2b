package peer

import (
	"sync"

	"golang.org/x/sys/unix"
)

// liveTable spares a check the /proc/PID/stat read (about 7 µs, most of a cached check's cost):
// it holds a pidfd on each process it has seen, up to maxLive, with the start time read when the
// pidfd was opened. While a pidfd does not poll readable its process has not exited, and a pid
// is not reused before its process exits (and is reaped), so the pid still names the process of
// that start time: one poll(2) with no timeout (under 0.5 µs) replaces the read. A pidfd that
// polls readable is closed and the start time read again.
type liveTable struct {
	mu     sync.Mutex
	byPID  map[int]liveProcess
	closed bool
}

type liveProcess struct {
	fd    int
	start uint64
}

// maxLive bounds the pidfds a Requirement keeps open; processes beyond it are checked with a
// start-time read each time.
const maxLive = 64

func newLiveTable() *liveTable { return &liveTable{byPID: map[int]liveProcess{}} }

// exited reports whether a pidfd's process has exited (or the pidfd cannot be polled).
func exited(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err != nil || n != 0
	}
}

// get returns the start time of the process at pid if a pidfd on it shows that it still lives.
func (t *liveTable) get(pid int) (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.byPID[pid]
	if !ok {
		return 0, false
	}
	if exited(p.fd) {
		unix.Close(p.fd)
		delete(t.byPID, pid)
		return 0, false
	}
	return p.start, true
}

// add opens a pidfd on the process at pid whose start time was read as start, if there is room:
// the start time is read again after the pidfd is open, so that the pidfd is known to be that
// process's (the pid may have been reused between the first read and the open).
func (t *liveTable) add(pid int, start uint64, readStart func(int) (uint64, error)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	if len(t.byPID) >= maxLive {
		t.sweep()
		if len(t.byPID) >= maxLive {
			return
		}
	}
	if old, ok := t.byPID[pid]; ok {
		unix.Close(old.fd)
		delete(t.byPID, pid)
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return // no pidfd (an old kernel, a limit): the start time is read each time
	}
	if again, err := readStart(pid); err != nil || again != start {
		unix.Close(fd)
		return
	}
	// sweep closes the pidfds of processes that exited, so that a peer that went away does not
	// keep its pidfd until the next message from its pid.
	t.sweep()
	t.byPID[pid] = liveProcess{fd: fd, start: start}
}

// sweep closes the pidfds of exited processes; t.mu is held.
func (t *liveTable) sweep() {
	for pid, p := range t.byPID {
		if exited(p.fd) {
			unix.Close(p.fd)
			delete(t.byPID, pid)
		}
	}
}

// close closes every pidfd; later adds keep none.
func (t *liveTable) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for pid, p := range t.byPID {
		unix.Close(p.fd)
		delete(t.byPID, pid)
	}
	t.closed = true
}
