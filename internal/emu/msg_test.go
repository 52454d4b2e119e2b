//go:build linux

package emu

import (
	"context"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(entries)
}

// fdSnapshot is the files the process has open, by fd number, so that a test can require that
// it left none open (newSince) whatever earlier tests' fds close meanwhile: their idle memfd
// pools and regions close poolIdle after their last use, and channels when a hang-up is seen,
// so a count taken as a test starts can drop during it (under load, TestLocalMessageMemory saw
// 16 fall to 14 and failed).
type fdSnapshot map[int]fdFile

// fdFile names an open file: its device and inode, and where /proc says the fd points.
type fdFile struct {
	dev, ino uint64
	link     string
}

// openFiles takes an fdSnapshot of the process.
func openFiles(t *testing.T) fdSnapshot {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	s := fdSnapshot{}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		require.NoError(t, err)
		var st unix.Stat_t
		path := "/proc/self/fd/" + e.Name()
		link, lerr := os.Readlink(path)
		if lerr != nil || unix.Stat(path, &st) != nil {
			continue // closed since the listing (ReadDir's own fd among them)
		}
		s[fd] = fdFile{dev: st.Dev, ino: st.Ino, link: link}
	}
	return s
}

// newSince lists the fds open now that were not open, to the same file, at before: the fds a
// test opened and left, however many others closed meanwhile.
func newSince(t *testing.T, before fdSnapshot) []string {
	t.Helper()
	var opened []string
	for fd, f := range openFiles(t) {
		if before[fd] != f {
			opened = append(opened, strconv.Itoa(fd)+"="+f.link)
		}
	}
	return opened
}

// requireNoNewFDs requires that no fd is open now that was not at before, waiting up to 5 s for
// the test's own deferred closes (a send's idle memfd pool closes poolIdle after its last use).
func requireNoNewFDs(t *testing.T, before fdSnapshot, msg string) {
	t.Helper()
	var opened []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if opened = newSince(t, before); len(opened) == 0 || time.Now().After(deadline) {
			break
		}
	}
	require.Empty(t, opened, msg)
}

// A large copy that fails in one of its parts fails the send with MACH_SEND_NO_BUFFER and
// closes the memfds the other parts made; the send right stays, and the port still works.
func TestSplitCopyFailureReleasesParts(t *testing.T) {
	name, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	defer ModRefs(name, abi.MACH_PORT_RIGHT_RECEIVE, -1)
	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(name, name, dispMakeSend))
	defer Deallocate(name)

	data := make([]byte, 4*splitMin)
	msg := func() *Msg {
		return &Msg{Bits: dispCopySend, Remote: name, ID: 1,
			Descs: []Desc{{Memory: true, Data: data, Size: uint32(len(data)), Copy: abi.MACH_MSG_VIRTUAL_COPY}}}
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // four parts
	before := openFiles(t)
	var calls atomic.Int32
	memfdCreate = func(name string, flags int) (int, error) {
		if calls.Add(1) == 2 {
			return -1, unix.EMFILE
		}
		return unix.MemfdCreate(name, flags)
	}
	kr = Send(msg(), 0)
	memfdCreate = unix.MemfdCreate
	require.Equal(t, int32(4), calls.Load(), "the copy was split in four")
	require.Equal(t, int32(abi.MACH_SEND_NO_BUFFER), kr)
	require.Empty(t, newSince(t, before), "no memfd is left open")
	refs, kr := GetRefs(name, abi.MACH_PORT_RIGHT_SEND)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, uint32(1), refs)

	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), Send(msg(), 0))
	var out Msg
	size := func(ports, mems, body int) int { return 1 << 20 }
	_, kr = Receive(context.Background(), name, 1<<20, size, false, 0, &out)
	require.Equal(t, int32(abi.MACH_MSG_SUCCESS), kr)
	require.Len(t, out.Descs, 1)
	require.Equal(t, int32(abi.KERN_SUCCESS), VMDeallocate(out.Descs[0].Addr, int(out.Descs[0].Size)))
}

// ignoringSIGURGInChild runs test in a child process that ignores SIGURG (for the whole
// process, so not in this one) and reports false here; in that child it reports true, and the
// test goes on.
func ignoringSIGURGInChild(t *testing.T, test string) bool {
	const env = "EMU_TEST_IGNORE_SIGURG"
	if os.Getenv(env) == test {
		signal.Ignore(syscall.SIGURG)
		return true
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), env+"="+test)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	return false
}

// A process that ignores SIGURG cannot have a receiver blocked in recvmsg woken by a signal: the
// first such wait ends at directTimeout, and from then on receivers wait in epoll. It runs in a
// child process, as ignoring SIGURG is for the whole process.
func TestDirectWaitWithoutSIGURG(t *testing.T) {
	if !ignoringSIGURGInChild(t, "TestDirectWaitWithoutSIGURG") {
		return
	}
	name, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(name, name, dispMakeSend))
	// A receive blocks in recvmsg on a port with one channel: the channel the send right would
	// take to another process (a local send right has none).
	_, ok := ChannelFD(name)
	require.True(t, ok)

	// blockedThenNotified starts a receive, makes and drops a send-once right once the receive
	// waits, and returns how long the send-once notification took to arrive.
	blockedThenNotified := func() time.Duration {
		before := DirectWaits()
		got := receiveInBackground(name)
		for DirectWaits() == before && !directOff.Load() {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond)
		start := time.Now()
		dropSendOnce(t, name)
		requireReceived(t, <-got, abi.MACH_NOTIFY_SEND_ONCE)
		return time.Since(start)
	}
	first := blockedThenNotified()
	require.True(t, directOff.Load(), "direct waits are off once signals go unanswered")
	require.Less(t, first, directTimeout+time.Second)
	waits := DirectWaits()
	require.Less(t, blockedThenNotified(), 500*time.Millisecond, "the next receive waits in epoll")
	require.Equal(t, waits, DirectWaits())
}

// A receive that a context can cancel blocks its thread in epoll_wait, and the cancellation
// interrupts it with SIGURG. In a process that ignores SIGURG the first canceled wait still
// returns (at its periodic look at the context, within directTimeout), the unanswered signals
// turn such waits off, and later canceled waits park in Go's poller and return promptly. It runs
// in a child process, as ignoring SIGURG is for the whole process.
func TestCanceledWaitWithoutSIGURG(t *testing.T) {
	if !ignoringSIGURGInChild(t, "TestCanceledWaitWithoutSIGURG") {
		return
	}
	name, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)

	// canceledWait starts a receive with a context, cancels it once the receive waits, and
	// returns how long the receive took to return after the cancellation.
	canceledWait := func() time.Duration {
		ctx, cancel := context.WithCancel(context.Background())
		got := make(chan int32, 1)
		go func() {
			var out Msg
			size := func(ports, mems, body int) int { return 0 }
			_, kr := Receive(ctx, name, 1024, size, false, -1, &out)
			got <- kr
		}()
		time.Sleep(50 * time.Millisecond)
		start := time.Now()
		cancel()
		select {
		case kr := <-got:
			require.Equal(t, RcvCanceled, kr)
		case <-time.After(directTimeout + 10*time.Second):
			t.Fatal("the canceled receive still waits")
		}
		return time.Since(start)
	}
	require.False(t, directOff.Load())
	canceledWait()
	require.True(t, directOff.Load(), "waits that signals cannot interrupt are off")
	require.Less(t, canceledWait(), 500*time.Millisecond, "the next canceled wait parks in the poller")
}
