package mach_test

import (
	"crypto/sha256"
	"encoding/binary"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// Out-of-line copies of 64 KiB and 1 MiB to another process, sent several at a time (more than a
// channel's pool of memfds holds) and again after the replies: the peer digests each at once, and
// every digest is of what was sent, whether the memory went through a pooled memfd, reused or
// new, or a fresh one when the pool was busy. Regions moved whole arrive intact too, and the
// pools leave no fd behind (leak check).
func TestOutOfLineAcrossProcessesPooled(t *testing.T) {
	checkLeaks(t)
	ctx := ctxTimeout2(t, 30*time.Second)
	port, s := newPort(t, mach.PortOptions{QueueLimit: 64})
	reply, _ := newPort(t, mach.PortOptions{QueueLimit: 64})
	startPeer(t, "echo", s)
	peer, _ := hello(t, ctx, port)

	for _, tc := range []struct {
		name   string
		size   int
		region bool
	}{
		{"64 KiB copies", 64 << 10, false},
		{"1 MiB copies", 1 << 20, false},
		{"64 KiB regions moved whole", 64 << 10, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const inFlight = 6
			seq := 0
			for round := range 3 {
				var want [][32]byte
				for range inFlight {
					seq++
					data := make([]byte, tc.size)
					for i := 0; i < len(data); i += 8 {
						binary.LittleEndian.PutUint64(data[i:], uint64(seq)<<32|uint64(i))
					}
					want = append(want, sha256.Sum256(data))
					d := &mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy}
					if tc.region {
						r, err := mach.AllocateRegion(tc.size)
						require.NoError(t, err)
						copy(r.Bytes(), data)
						d = &mach.OOLDescriptor{Region: r, Deallocate: true, Copy: mach.VirtualCopy}
					}
					require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer),
						Local: mach.MakeSendOnceOf(reply), ID: idEcho, Descriptors: []mach.Descriptor{d}}))
				}
				// Each reply comes through its own send-once right, and the emulation keeps no
				// order across channels (see the Linux differences): the digests are matched as a
				// set.
				pending := map[[32]byte]int{}
				for _, w := range want {
					pending[w]++
				}
				for range want {
					var in mach.Message
					require.NoError(t, mach.Receive(ctx, reply, &in))
					require.Len(t, in.Body, 36)
					got := [32]byte(in.Body[:32])
					require.Positive(t, pending[got], "round %d: a reply digests what was sent", round)
					pending[got]--
					require.Equal(t, uint32(tc.size), binary.LittleEndian.Uint32(in.Body[32:]))
					in.Destroy()
				}
			}
		})
	}
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), ID: idQuit}))
}
