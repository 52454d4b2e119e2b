//go:build linux

package mach_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// Replies from another process that a polling receive reads (internal/emu's pollrecv.go) arrive
// whole: body, out-of-line memory and the sender's credentials, as a blocked receive gets them.
// With polling off, no receive polls; with a budget and window of a second, every wait after the
// first polls and gets its reply that way.
func TestPollingReceiveGetsReplies(t *testing.T) {
	if runtime.NumCPU() < 2 || runtime.GOMAXPROCS(0) < 2 {
		t.Skip("the emulation polls only with more than one CPU and P")
	}
	checkLeaks(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	peer := startEchoPeer(t, ctx)
	reply, _ := newPort(t, mach.PortOptions{})
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	sum := sha256.Sum256(data)
	wantOOL := binary.LittleEndian.AppendUint32(sum[:], uint32(len(data)))

	const rounds = 40
	for _, tc := range []struct {
		name      string
		budget    time.Duration
		wantPolls uint64
	}{
		{"off", 0, 0},
		{"on", time.Second, rounds - 1}, // the first wait has no quick wait before it
	} {
		t.Run(tc.name, func(t *testing.T) {
			restore := emu.SetPolling(tc.budget, time.Second)
			defer restore()
			polls0, hits0 := emu.Polls()
			for i := range rounds {
				out := &mach.Message{Remote: mach.CopySendOf(peer), Local: mach.MakeSendOnceOf(reply), ID: idEcho,
					Body: []byte{byte(i), 1, 2, 3}}
				if i%4 == 3 {
					out.Descriptors = []mach.Descriptor{&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy}}
				}
				require.NoError(t, mach.Send(ctx, out))
				var in mach.Message
				// Without a deadline or a context that can end: only such a receive waits in recvmsg.
				require.NoError(t, mach.Receive(context.Background(), reply, &in))
				require.Equal(t, int32(idEcho), in.ID)
				if i%4 == 3 {
					require.True(t, bytes.Equal(wantOOL, in.Body), "round %d: the peer saw other memory", i)
				} else {
					require.Equal(t, []byte{byte(i), 1, 2, 3}, in.Body, "round %d", i)
				}
				pid := int(in.Trailer.Audit.PID())
				require.True(t, pid != 0 && pid != os.Getpid(), "round %d: the sender's pid is %d", i, pid)
				require.NoError(t, in.Destroy())
			}
			polls, hits := emu.Polls()
			require.GreaterOrEqual(t, polls-polls0, tc.wantPolls, "receives that polled")
			require.Equal(t, polls-polls0, hits-hits0, "every poll got its reply within a second")
			if tc.budget == 0 {
				require.Zero(t, polls-polls0)
			}
		})
	}
}
