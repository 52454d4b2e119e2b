package mach_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// Benchmarks. On this project's Linux machines they measure the emulation; on macOS runners the
// kernel. Latency percentiles are reported as p50-ns and p99-ns beside ns/op.

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

// BenchmarkRoundTrip is a cross-process request and reply with a 64-byte inline body: plain,
// with a reply through a send-once right, and carrying a send right.
func BenchmarkRoundTrip(b *testing.B) {
	ctx := context.Background()
	port, s := newPort(b, mach.PortOptions{QueueLimit: 64})
	reply, _ := newPort(b, mach.PortOptions{})
	_, carried := newPort(b, mach.PortOptions{})
	startPeer(b, "pong", s)
	peer, _ := hello(b, ctxTimeout2(b, 10*time.Second), port)
	body := make([]byte, 64)

	run := func(b *testing.B, out *mach.Message, from *mach.ReceiveRight) {
		var in mach.Message
		lat := make([]time.Duration, b.N)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			start := time.Now()
			sendReceive(b, ctx, out, from, &in)
			lat[i] = time.Since(start)
		}
		b.StopTimer()
		reportLatency(b, lat)
	}
	b.Run("64B", func(b *testing.B) {
		run(b, &mach.Message{Remote: mach.CopySendOf(peer), ID: 1, Body: body}, port)
	})
	b.Run("64B+send-once-reply", func(b *testing.B) {
		run(b, &mach.Message{Remote: mach.CopySendOf(peer), Local: mach.MakeSendOnceOf(reply), ID: 2, Body: body}, reply)
	})
	b.Run("64B+send-right", func(b *testing.B) {
		run(b, &mach.Message{Remote: mach.CopySendOf(peer), ID: 3, Body: body,
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.CopySendOf(carried)}}}, port)
	})
	require.NoError(b, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(peer), ID: idQuit}))
}

// sendReceive sends out and receives the next message on from into in.
func sendReceive(b *testing.B, ctx context.Context, out *mach.Message, from mach.Receiver, in *mach.Message) {
	if err := mach.Send(ctx, out); err != nil {
		b.Fatal(err)
	}
	if err := mach.Receive(ctx, from, in); err != nil {
		b.Fatal(err)
	}
}

func ctxTimeout2(b testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	b.Cleanup(cancel)
	return ctx
}

// BenchmarkSendReceive is a send and receive on a port of the same process with reused message
// buffers: the allocation count per operation is the figure to watch.
func BenchmarkSendReceive(b *testing.B) {
	ctx := context.Background()
	r, s := newPort(b, mach.PortOptions{QueueLimit: 64})
	out := &mach.Message{Remote: mach.CopySendOf(s), ID: 1, Body: make([]byte, 64)}
	var in mach.Message
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		sendReceive(b, ctx, out, r, &in)
	}
}

// BenchmarkOutOfLine64MiB sends and receives 64 MiB out-of-line, next to one copy of 64 MiB.
func BenchmarkOutOfLine64MiB(b *testing.B) {
	data := make([]byte, 64<<20)
	for i := range data {
		data[i] = byte(i)
	}
	b.Run("copy-baseline", func(b *testing.B) {
		dst := make([]byte, len(data))
		b.SetBytes(int64(len(data)))
		for range b.N {
			copy(dst, data)
		}
	})
	b.Run("mach-region-deallocate", func(b *testing.B) {
		// A region handed over with Deallocate moves without a copy, as Mach moves its pages.
		ctx := context.Background()
		r, s := newPort(b, mach.PortOptions{})
		var in mach.Message
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			region, err := mach.AllocateRegion(len(data))
			if err != nil {
				b.Fatal(err)
			}
			copy(region.Bytes(), data)
			out := &mach.Message{Remote: mach.CopySendOf(s), ID: 1,
				Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Region: region, Deallocate: true, Copy: mach.VirtualCopy}}}
			b.StartTimer()
			sendReceive(b, ctx, out, r, &in)
			in.Destroy()
		}
	})
	b.Run("mach", func(b *testing.B) {
		ctx := context.Background()
		r, s := newPort(b, mach.PortOptions{})
		out := &mach.Message{Remote: mach.CopySendOf(s), ID: 1,
			Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy}}}
		var in mach.Message
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		for range b.N {
			sendReceive(b, ctx, out, r, &in)
			in.Destroy()
		}
	})
}
