package cfmessageport_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

var benchSizes = []int{64, 4000, 64 << 10, 16 << 20}

// BenchmarkRoundTrip compares a CFMessagePort request/reply with a raw mach request/reply of the
// same size and shape (inline up to 4000 bytes, out-of-line above, a send-once reply right, the
// reply copied out), each against an echo service in a child process, in the same run.
// benchRemote starts an echo service in a child process and dials it, for a benchmark of
// size-byte round trips; the timer starts afterwards.
func benchRemote(b *testing.B, ctx context.Context, size int) *cfmessageport.Remote {
	name := uniqueName(b)
	startChild(b, "serve", name)
	r, err := cfmessageport.Dial(ctx, name)
	require.NoError(b, err)
	b.Cleanup(func() { r.Close() })
	b.SetBytes(int64(size))
	b.ResetTimer()
	return r
}

func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	for _, size := range benchSizes {
		data := make([]byte, size)
		b.Run(fmt.Sprintf("raw/%d", size), func(b *testing.B) {
			name := uniqueName(b)
			startChild(b, "rawserve", name)
			service, err := bootstrap.LookUp(ctx, name)
			require.NoError(b, err)
			defer service.Close()
			reply, err := mach.NewPort(mach.PortOptions{})
			require.NoError(b, err)
			defer reply.Close()
			var in mach.Message
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				out := &mach.Message{Remote: mach.CopySendOf(service), Local: mach.MakeSendOnceOf(reply), ID: 1}
				if size > wire.InlineLimit {
					out.Descriptors = []mach.Descriptor{&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy}}
				} else {
					out.Body = data
				}
				if err := mach.Send(ctx, out); err != nil {
					b.Fatal(err)
				}
				if err := mach.Receive(ctx, reply, &in); err != nil {
					b.Fatal(err)
				}
				var got []byte
				if len(in.Descriptors) == 1 {
					got = append([]byte{}, in.Descriptors[0].(*mach.OOLDescriptor).Data...)
				} else {
					got = append([]byte{}, in.Body...)
				}
				if len(got) != size {
					b.Fatalf("%d bytes back", len(got))
				}
				_ = in.Destroy()
			}
		})
		b.Run(fmt.Sprintf("cf/%d", size), func(b *testing.B) {
			r := benchRemote(b, ctx, size)
			for b.Loop() {
				got, err := r.Request(ctx, msgEcho, data)
				if err != nil {
					b.Fatal(err)
				}
				if len(got) != size {
					b.Fatalf("%d bytes back", len(got))
				}
			}
		})
		// RequestFunc: the reply read where it arrived, not copied.
		b.Run(fmt.Sprintf("cf-func/%d", size), func(b *testing.B) {
			r := benchRemote(b, ctx, size)
			n := 0
			read := func(reply []byte) error { n = len(reply); return nil }
			for b.Loop() {
				if err := r.RequestFunc(ctx, msgEcho, data, read); err != nil {
					b.Fatal(err)
				}
				if n != size {
					b.Fatalf("%d bytes back", n)
				}
			}
		})
	}
}
