// Package leakcheck asserts that a test leaves no file descriptors or Mach port names behind.
package leakcheck

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/machport/machport/internal/threadnames"
	"github.com/machport/machport/mach"
)

// FDs returns how many file descriptors this process has open.
func FDs(t testing.TB) int {
	ents, err := os.ReadDir(fdDir())
	if err != nil {
		t.Fatalf("leakcheck: %v", err)
	}
	return len(ents)
}

func fdDir() string {
	if _, err := os.Stat("/proc/self/fd"); err == nil {
		return "/proc/self/fd"
	}
	return "/dev/fd"
}

// FDList describes the open descriptors, for a leak report.
func FDList() []string {
	ents, _ := os.ReadDir(fdDir())
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		target, _ := os.Readlink(fdDir() + "/" + e.Name())
		out = append(out, e.Name()+"="+target)
	}
	return out
}

// Names returns how many port names this task has.
func Names(t testing.TB) int {
	names, err := mach.Names()
	if err != nil {
		t.Fatalf("leakcheck: %v", err)
	}
	return len(names)
}

// nameSet is the task's names now, for naming the ones a test left behind.
func nameSet() map[mach.Name]bool {
	infos, _ := mach.Names()
	set := make(map[mach.Name]bool, len(infos))
	for _, in := range infos {
		set[in.Name] = true
	}
	return set
}

// newNames describes the names that were not in before (a name and its mach_port_type_t bits).
func newNames(before map[mach.Name]bool) []string {
	infos, _ := mach.Names()
	var out []string
	for _, in := range infos {
		if !before[in.Name] {
			out = append(out, fmt.Sprintf("%#x type %#x", uint32(in.Name), uint32(in.Type)))
		}
	}
	return out
}

func threads() int { return pprof.Lookup("threadcreate").Count() }

// Check records the fd, port-name and goroutine counts now and fails the test at cleanup unless
// they have come back within a few seconds (background goroutines may still be closing what they
// own). Register it before the test's other cleanups, which run first.
// Threads may hold port names of their own (threadnames.PerThread: on macOS a thread port and a
// MIG reply port): the test's goroutine stays on one OS thread from here to the cleanup, so both
// counts come from the same thread, and each thread created meanwhile is allowed its names.
func Check(t *testing.T) {
	t.Helper()
	WarmUp(t)
	runtime.LockOSThread() // undone by the cleanup, which runs on this goroutine
	fds, names, th, gs := FDs(t), Names(t), threads(), runtime.NumGoroutine()
	before := nameSet()
	t.Cleanup(func() {
		defer runtime.UnlockOSThread()
		var gotFDs, gotNames, gotGs int
		for range 300 {
			gotFDs, gotNames, gotGs = FDs(t), Names(t), runtime.NumGoroutine()
			allowed := names + threadnames.PerThread*(threads()-th)
			if gotFDs <= fds && gotNames <= allowed && gotGs <= gs {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<20)
		t.Errorf("leak: fds %d -> %d, port names %d -> %d, goroutines %d -> %d\nopen fds: %v\nnew port names: %v\ngoroutines:\n%s",
			fds, gotFDs, names, gotNames, gs, gotGs, FDList(), newNames(before), buf[:runtime.Stack(buf, true)])
	})
}

// WarmUp makes the platform create what it keeps for the life of the process (the emulation's
// monitor and pooled waiters, Go's poller), so that a leak check counts only what the test
// leaves behind.
func WarmUp(t testing.TB) {
	// A pipe makes Go's network poller open its epoll or kqueue descriptor, which it never closes:
	// on macOS nothing else below does, and the test's first child process would.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatalf("leakcheck: %v", err)
	}
	pr.Close()
	pw.Close()
	r, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		t.Fatalf("leakcheck: %v", err)
	}
	defer r.Close()
	so, err := r.MakeSendOnce()
	if err != nil {
		t.Fatalf("leakcheck: %v", err)
	}
	_ = so.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var m mach.Message
	if err := mach.Receive(ctx, r, &m); err != nil {
		t.Fatalf("leakcheck: %v", err)
	}
	// A dead-name request starts the emulation's monitor of channel hang-ups.
	s, err := r.MakeSend()
	if err != nil {
		t.Fatalf("leakcheck: %v", err)
	}
	defer s.Close()
	notify, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		t.Fatalf("leakcheck: %v", err)
	}
	defer notify.Close()
	if prev, err := s.RequestDeadName(notify); err == nil && prev != nil {
		defer prev.Close()
	}
}
