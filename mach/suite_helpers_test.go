package mach_test

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// The behavioural suite. It is platform-neutral: the same tests run on Linux over the emulation
// and, unchanged, on macOS runners over the real kernel. Cross-process cases re-exec the test
// binary as the peer (see TestMain).

func ctxTimeout(t *testing.T, d time.Duration) context.Context { return testproc.Context(t, d) }

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

// checkLeaks fails the test unless its fds, port names and goroutines are back at cleanup.
func checkLeaks(t *testing.T) {
	t.Helper()
	leakcheck.Check(t)
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
