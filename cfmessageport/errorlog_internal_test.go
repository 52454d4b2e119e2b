package cfmessageport

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A flood of one kind is logged logBurst (10) times a second; the next line logged says how many
// were left out, and each kind has its own budget.
func TestErrorLogIsRateLimited(t *testing.T) {
	var out bytes.Buffer
	clock := time.Unix(1000, 0)
	e := newErrorLog(slog.New(slog.NewTextHandler(&out, nil)), "svc")
	e.now = func() time.Time { return clock }
	lines := func(msg string) []string {
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			if strings.Contains(l, msg) {
				got = append(got, l)
			}
		}
		return got
	}
	for range 100 {
		e.dropped("flood", 42, errors.New("bad"))
	}
	require.Len(t, lines("dropped a message"), logBurst)
	e.handlerFailed(&Message{MsgID: 3}, errors.New("other kind"))
	require.Len(t, lines("handler error"), 1, "another kind has its own budget")

	clock = clock.Add(999 * time.Millisecond)
	e.dropped("flood", 42, errors.New("bad"))
	require.Len(t, lines("dropped a message"), logBurst, "still the same second")
	clock = clock.Add(time.Millisecond)
	e.dropped("flood", 42, errors.New("bad"))
	got := lines("dropped a message")
	require.Len(t, got, logBurst+1)
	require.Contains(t, got[logBurst], "suppressed=91")
	require.Contains(t, got[logBurst], "service=svc")
	require.Contains(t, got[logBurst], "pid=42")
}
