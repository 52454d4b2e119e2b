package mach_test

import (
	"context"
	"os"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// The behavioural suite. It is platform-neutral: the same tests run on Linux over the emulation
// and, unchanged, on macOS runners over the real kernel. Cross-process cases re-exec the test
// binary as the peer (see TestMain).

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newPort makes a receive right and a send right to it, closed at the end of the test.
func newPort(t testing.TB, opts mach.PortOptions) (*mach.ReceiveRight, *mach.SendRight) {
	t.Helper()
	r, err := mach.NewPort(opts)
	require.NoError(t, err)
	s, err := r.MakeSend()
	require.NoError(t, err)
	t.Cleanup(func() { s.Close(); r.Close() })
	return r, s
}

// fdCount is the number of open fds of this process.
func fdCount(t testing.TB) int {
	dir := "/proc/self/fd"
	if _, err := os.Stat(dir); err != nil {
		dir = "/dev/fd"
	}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	return len(ents)
}

// threadCount is how many OS threads the runtime has created.
func threadCount() int { return pprof.Lookup("threadcreate").Count() }

// fdList describes the open fds, for leak reports.
func fdList() []string {
	dir := "/proc/self/fd"
	if _, err := os.Stat(dir); err != nil {
		dir = "/dev/fd"
	}
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink(dir + "/" + e.Name())
		out = append(out, e.Name()+"="+target)
	}
	return out
}

func nameCount(t testing.TB) int {
	names, err := mach.Names()
	require.NoError(t, err)
	return len(names)
}

// checkLeaks records the fd and port-name counts now and asserts at cleanup that they are back
// (allowing the emulation's background monitor a moment to retire closed channels).
func checkLeaks(t *testing.T) {
	t.Helper()
	warmUp(t)
	fds, names, threads := fdCount(t), nameCount(t), threadCount()
	t.Cleanup(func() {
		var gotFDs, gotNames int
		for i := 0; i < 200; i++ {
			gotFDs, gotNames = fdCount(t), nameCount(t)
			// On macOS each OS thread that makes a MIG call (mach_port_*) gets a reply port of
			// its own for the life of the thread: new threads may add that many names.
			allowed := names + migReplyPorts(threadCount()-threads)
			if gotFDs <= fds && gotNames <= allowed {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("leak: fds %d -> %d, port names %d -> %d\nopen fds: %v", fds, gotFDs, names, gotNames, fdList())
	})
}

// warmUp makes the platform create what it keeps for the life of the process (the emulation's
// monitor and a pooled waiter), so that leak checks count only what a test leaves behind.
func warmUp(t *testing.T) {
	r, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	s, err := r.MakeSend()
	require.NoError(t, err)
	require.NoError(t, s.Close())
	so, err := r.MakeSendOnce()
	require.NoError(t, err)
	require.NoError(t, so.Close())
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var m mach.Message
	require.NoError(t, mach.Receive(ctx, r, &m))
	require.NoError(t, r.Close())
}

// send sends a simple message with an optional reply port.
func send(t testing.TB, ctx context.Context, dest *mach.SendRight, id int32, body []byte) {
	t.Helper()
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(dest), ID: id, Body: body}))
}

func receive(t testing.TB, ctx context.Context, from mach.Receiver) *mach.Message {
	t.Helper()
	var m mach.Message
	require.NoError(t, mach.Receive(ctx, from, &m))
	t.Cleanup(func() { m.Destroy() })
	return &m
}

// notification receives one message and parses it as a kernel notification.
func notification(t *testing.T, ctx context.Context, from *mach.ReceiveRight) *mach.Notification {
	t.Helper()
	m := receive(t, ctx, from)
	n, err := mach.ParseNotification(m)
	require.NoError(t, err, "message id %d", m.ID)
	return n
}
