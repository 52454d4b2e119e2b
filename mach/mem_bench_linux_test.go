package mach_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"testing"

	"github.com/machport/machport/mach"
	"golang.org/x/sys/unix"
)

// Focused benchmarks of the emulation's memory paths (issue 18, item 4), each beside its
// baseline in the same run.

// sumWords reads every byte of b, as a receiver that uses its data does.
func sumWords(b []byte) uint64 {
	var s uint64
	for i := 0; i+8 <= len(b); i += 8 {
		s += binary.LittleEndian.Uint64(b[i:])
	}
	return s
}

var sink uint64

// BenchmarkOOLRoundTrip sends size bytes out of line to a server goroutine that reads them all
// and replies with 64 bytes, beside the same exchange over a Unix stream socket.
func BenchmarkOOLRoundTrip(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i)
		}
		b.Run(fmt.Sprintf("%dKiB/mach", size>>10), func(b *testing.B) {
			ctx := context.Background()
			req, reqS := newPort(b, mach.PortOptions{QueueLimit: 64})
			rep, repS := newPort(b, mach.PortOptions{QueueLimit: 64})
			done := make(chan error, 1)
			go func() {
				var in mach.Message
				out := &mach.Message{Remote: mach.CopySendOf(repS), ID: 2, Body: make([]byte, 64)}
				for {
					if err := mach.Receive(ctx, req, &in); err != nil {
						done <- err
						return
					}
					if in.ID == idQuit {
						in.Destroy()
						done <- nil
						return
					}
					sink += sumWords(in.Descriptors[0].(*mach.OOLDescriptor).Data)
					in.Destroy()
					if err := mach.Send(ctx, out); err != nil {
						done <- err
						return
					}
				}
			}()
			out := &mach.Message{Remote: mach.CopySendOf(reqS), ID: 1,
				Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy}}}
			var in mach.Message
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				sendReceive(b, ctx, out, rep, &in)
			}
			b.StopTimer()
			if err := mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(reqS), ID: idQuit}); err != nil {
				b.Fatal(err)
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
		b.Run(fmt.Sprintf("%dKiB/unix-stream", size>>10), func(b *testing.B) {
			fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			client, server := os.NewFile(uintptr(fds[0]), "client"), os.NewFile(uintptr(fds[1]), "server")
			defer client.Close()
			done := make(chan error, 1)
			go func() {
				defer server.Close()
				buf := make([]byte, size)
				reply := make([]byte, 64)
				for {
					if _, err := io.ReadFull(server, buf); err != nil {
						done <- nil // the client closed
						return
					}
					sink += sumWords(buf)
					if _, err := server.Write(reply); err != nil {
						done <- err
						return
					}
				}
			}()
			reply := make([]byte, 64)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				if _, err := client.Write(data); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(client, reply); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			client.Close()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkRegionFill fills size bytes and sends them: into a fresh AllocateRegion handed over
// with Deallocate, against a reused Go buffer sent by copy. Allocation and fill are timed, as a
// user pays for them.
func BenchmarkRegionFill(b *testing.B) {
	for _, size := range []int{1 << 20, 4 << 20, 16 << 20} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i)
		}
		ctx := context.Background()
		b.Run(fmt.Sprintf("%dMiB/region-deallocate", size>>20), func(b *testing.B) {
			r, s := newPort(b, mach.PortOptions{})
			var in mach.Message
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				region, err := mach.AllocateRegion(size)
				if err != nil {
					b.Fatal(err)
				}
				copy(region.Bytes(), data)
				out := &mach.Message{Remote: mach.CopySendOf(s), ID: 1,
					Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Region: region, Deallocate: true, Copy: mach.VirtualCopy}}}
				sendReceive(b, ctx, out, r, &in)
				in.Destroy()
			}
		})
		b.Run(fmt.Sprintf("%dMiB/copy", size>>20), func(b *testing.B) {
			r, s := newPort(b, mach.PortOptions{})
			buf := make([]byte, size)
			out := &mach.Message{Remote: mach.CopySendOf(s), ID: 1,
				Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Data: buf, Copy: mach.VirtualCopy}}}
			var in mach.Message
			b.SetBytes(int64(size))
			b.ResetTimer()
			for range b.N {
				copy(buf, data)
				sendReceive(b, ctx, out, r, &in)
				in.Destroy()
			}
		})
	}
}
