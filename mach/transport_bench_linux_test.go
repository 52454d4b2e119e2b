//go:build linux

package mach_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"golang.org/x/sys/unix"
)

// The benchmarks of issue 18's Targets table that compare the emulation with plain sockets. Each
// runs the emulation and its baselines as sub-benchmarks of one benchmark, so that one
// `go test -bench` invocation measures both on the same machine at the same time; .ci/bench runs
// them three times interleaved and internal/benchreport turns the output into the table. Every
// case talks to a child process (this test binary re-executed, see TestMain).

// BenchmarkRequestReply is a 64-byte request and its 64-byte reply through a send-once right,
// the shape cfmessageport, machping and most users run (mach), against a SOCK_SEQPACKET
// ping-pong (seqpacket) and a length-framed ping-pong over a net.UnixConn stream (unixconn), each
// with a child process. Beside ns/op and the latency percentiles it reports cpu-ns/op, the CPU
// time of both processes per round trip, and allocs/op (the mach case reuses its messages, so its
// figure is the emulation's own).
func BenchmarkRequestReply(b *testing.B) {
	body := make([]byte, 64)
	b.Run("mach", func(b *testing.B) {
		peer, pid := startMachPeer(b, "pong")
		reply, _ := newPort(b, mach.PortOptions{})
		ctx := context.Background()
		out := &mach.Message{Remote: mach.CopySendOf(peer), Local: mach.MakeSendOnceOf(reply), ID: 2, Body: body}
		var in mach.Message
		roundTrips(b, pid, func() error {
			if err := mach.Send(ctx, out); err != nil {
				return err
			}
			return mach.Receive(ctx, reply, &in)
		})
		quitPeer(b, peer)
	})
	b.Run("seqpacket", func(b *testing.B) {
		fd, pid := startSocketPeer(b, "seqpong", unix.SOCK_SEQPACKET)
		in := make([]byte, 1024)
		roundTrips(b, pid, func() error {
			if _, err := unix.Write(fd, body); err != nil {
				return err
			}
			_, err := unix.Read(fd, in)
			return err
		})
	})
	b.Run("unixconn", func(b *testing.B) {
		fd, pid := startSocketPeer(b, "streampong", unix.SOCK_STREAM)
		echo := framedEcho(b, fd)
		roundTrips(b, pid, func() error { return echo(body) })
	})
}

// BenchmarkPipelined keeps 64 requests in flight: it sends 64 64-byte requests, each with a
// send-once reply right, then receives their 64 replies (mach), against the same with
// SOCK_SEQPACKET datagrams (seqpacket). ns/op is per request.
func BenchmarkPipelined(b *testing.B) {
	const depth = 64
	body := make([]byte, 64)
	b.Run("mach", func(b *testing.B) {
		peer, _ := startMachPeer(b, "pong")
		reply, _ := newPort(b, mach.PortOptions{QueueLimit: depth})
		ctx := context.Background()
		out := &mach.Message{Remote: mach.CopySendOf(peer), Local: mach.MakeSendOnceOf(reply), ID: 2, Body: body}
		var in mach.Message
		pipelined(b, depth, func() error { return mach.Send(ctx, out) }, func() error { return mach.Receive(ctx, reply, &in) })
		quitPeer(b, peer)
	})
	b.Run("seqpacket", func(b *testing.B) {
		fd, _ := startSocketPeer(b, "seqpong", unix.SOCK_SEQPACKET)
		in := make([]byte, 1024)
		pipelined(b, depth, func() error {
			_, err := unix.Write(fd, body)
			return err
		}, func() error {
			_, err := unix.Read(fd, in)
			return err
		})
	})
}

// pipelined runs b.N requests depth at a time: depth sends, then depth receives.
func pipelined(b *testing.B, depth int, send, recv func() error) {
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += depth {
		k := min(depth, b.N-done)
		for range k {
			if err := send(); err != nil {
				b.Fatal(err)
			}
		}
		for range k {
			if err := recv(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkOutOfLine is a round trip of 64 KiB and of 1 MiB: out of line each way (the child
// hands the received memory back with Deallocate, without touching it) and read by the client
// into its own buffer (mach), against a length-framed echo over a Unix stream socket
// (unixstream), whose client reads the reply into its buffer too.
func BenchmarkOutOfLine(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20} {
		data := make([]byte, size)
		fillPattern(data)
		b.Run(sizeName(size)+"/mach", func(b *testing.B) {
			peer, _ := startMachPeer(b, "oolpong")
			reply, _ := newPort(b, mach.PortOptions{})
			ctx := context.Background()
			out := &mach.Message{Remote: mach.CopySendOf(peer), Local: mach.MakeSendOnceOf(reply), ID: 2,
				Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Data: data, Copy: mach.VirtualCopy}}}
			var in mach.Message
			got := make([]byte, size)
			b.SetBytes(int64(size))
			roundTrips(b, 0, func() error {
				if err := mach.Send(ctx, out); err != nil {
					return err
				}
				if err := mach.Receive(ctx, reply, &in); err != nil {
					return err
				}
				if len(in.Descriptors) != 1 || copy(got, in.Descriptors[0].(*mach.OOLDescriptor).Data) != size {
					return fmt.Errorf("the reply is not %d bytes out of line", size)
				}
				return in.Destroy()
			})
			quitPeer(b, peer)
		})
		b.Run(sizeName(size)+"/unixstream", func(b *testing.B) {
			fd, _ := startSocketPeer(b, "streampong", unix.SOCK_STREAM)
			echo := framedEcho(b, fd)
			b.SetBytes(int64(size))
			roundTrips(b, 0, func() error { return echo(data) })
		})
	}
}

// BenchmarkRegionSend sends 1, 4 and 16 MiB to a child that answers with an empty reply: from a
// region made with AllocateRegion, filled, and sent with Deallocate (region), against a reused
// buffer filled the same way and sent by copy (copy). The fill is timed in both: it is where a
// fresh region's page faults show.
func BenchmarkRegionSend(b *testing.B) {
	for _, size := range []int{1 << 20, 4 << 20, 16 << 20} {
		pattern := make([]byte, size)
		fillPattern(pattern)
		for _, how := range []string{"region", "copy"} {
			b.Run(sizeName(size)+"/"+how, func(b *testing.B) {
				peer, _ := startMachPeer(b, "sinkpong")
				reply, _ := newPort(b, mach.PortOptions{})
				ctx := context.Background()
				buf := make([]byte, size)
				var in mach.Message
				b.SetBytes(int64(size))
				roundTrips(b, 0, func() error {
					d := &mach.OOLDescriptor{Copy: mach.VirtualCopy}
					if how == "region" {
						region, err := mach.AllocateRegion(size)
						if err != nil {
							return err
						}
						copy(region.Bytes(), pattern)
						d.Region, d.Deallocate = region, true
					} else {
						copy(buf, pattern)
						d.Data = buf
					}
					out := &mach.Message{Remote: mach.CopySendOf(peer), Local: mach.MakeSendOnceOf(reply), ID: 2,
						Descriptors: []mach.Descriptor{d}}
					if err := mach.Send(ctx, out); err != nil {
						return err
					}
					return mach.Receive(ctx, reply, &in)
				})
				quitPeer(b, peer)
			})
		}
	}
}

// roundTrips times b.N calls of op, reporting the latency percentiles, allocations and, when
// pid is a child's, the CPU time of this process and the child per call (cpu-ns/op).
func roundTrips(b *testing.B, pid int, op func() error) {
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b, pid)
	for i := range b.N {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	if pid != 0 {
		b.ReportMetric(float64(cpuTime(b, pid)-cpu0)/float64(b.N), "cpu-ns/op")
	}
	reportLatency(b, lat)
}

// cpuTime is the CPU time (user and system) this process has used, from getrusage, plus that of
// the child pid, from its process-wide CPU clock (clock_getcpuclockid(3): the same accounting as
// the child's own getrusage, readable while the child runs). pid 0 counts this process only.
func cpuTime(b *testing.B, pid int) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	t := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if pid != 0 {
		// MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED) of the kernel's include/linux/posix-timers.h.
		var ts unix.Timespec
		if err := unix.ClockGettime(int32(^pid<<3|2), &ts); err != nil {
			b.Fatalf("the child's CPU clock: %v", err)
		}
		t += time.Duration(ts.Nano())
	}
	return t
}

// startMachPeer starts a child in role (pong, or one of machPeers) and returns a send right to
// its port and its pid.
func startMachPeer(b *testing.B, role string) (*mach.SendRight, int) {
	port, s := newPort(b, mach.PortOptions{QueueLimit: 64})
	startPeer(b, role, s)
	return hello(b, ctxTimeout2(b, 10*time.Second), port)
}

// quitPeer asks a peer started by startMachPeer to exit.
func quitPeer(b *testing.B, peer *mach.SendRight) {
	if err := mach.Send(context.Background(), &mach.Message{Remote: mach.CopySendOf(peer), ID: idQuit}); err != nil {
		b.Fatal(err)
	}
}

// startSocketPeer starts a child in role with one end of a socketpair of type typ as its fd 3 and
// returns the other end and the child's pid. The child exits when the socket closes.
func startSocketPeer(b *testing.B, role string, typ int) (int, int) {
	fds, err := unix.Socketpair(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "socket")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.ExtraFiles = []*os.File{child}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	child.Close()
	b.Cleanup(func() { unix.Close(fds[0]); cmd.Wait() })
	return fds[0], cmd.Process.Pid
}

// framedEcho returns a client of the streampong child on fd: each call writes a 4-byte
// little-endian length and the data and reads the echo back into a buffer of its own. It talks
// through a net.UnixConn (goroutines parked in Go's poller), as Go code does.
func framedEcho(b *testing.B, fd int) func([]byte) error {
	conn, err := fileConn(fd)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	var out, in []byte
	return func(data []byte) error {
		out = binary.LittleEndian.AppendUint32(out[:0], uint32(len(data)))
		out = append(out, data...)
		if _, err := conn.Write(out); err != nil {
			return err
		}
		var hdr [4]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return err
		}
		n := int(binary.LittleEndian.Uint32(hdr[:]))
		if cap(in) < n {
			in = make([]byte, n)
		}
		_, err := io.ReadFull(conn, in[:n])
		return err
	}
}

// fileConn makes a net.Conn of a duplicate of fd.
func fileConn(fd int) (net.Conn, error) {
	dup, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "socket")
	defer f.Close()
	return net.FileConn(f)
}

// streamPong echoes length-framed messages on the stream socket at fd 3 until it closes.
func streamPong() error {
	conn, err := fileConn(3)
	if err != nil {
		return err
	}
	unix.Close(3)
	defer conn.Close()
	var buf []byte
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return nil
		}
		n := int(binary.LittleEndian.Uint32(hdr[:]))
		if cap(buf) < 4+n {
			buf = make([]byte, 4+n)
		}
		buf = buf[:4+n]
		copy(buf, hdr[:])
		if _, err := io.ReadFull(conn, buf[4:]); err != nil {
			return nil
		}
		if _, err := conn.Write(buf); err != nil {
			return nil
		}
	}
}

// machPeer is a peer role with a Mach port of its own, like runPeer's: it accepts the parent's
// send right, says hello with a send right to its port and its pid, and serves the port with
// serve until serve returns.
func machPeer(serve func(ctx context.Context, port *mach.ReceiveRight) error) func() error {
	return func() error {
		parent, err := acceptHandOff()
		if err != nil {
			return err
		}
		defer parent.Close()
		ctx := context.Background()
		port, err := mach.NewPort(mach.PortOptions{QueueLimit: 64})
		if err != nil {
			return err
		}
		defer port.Close()
		pid := binary.LittleEndian.AppendUint32(nil, uint32(os.Getpid()))
		if err := mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(parent), ID: idHello, Body: pid,
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MakeSendOf(port)}}}); err != nil {
			return err
		}
		return serve(ctx, port)
	}
}

// replyLoop answers each request on port through its send-once right with the message answer
// makes of it, until idQuit; the request's rights and memory are released after the reply.
func replyLoop(answer func(in, out *mach.Message)) func(context.Context, *mach.ReceiveRight) error {
	return func(ctx context.Context, port *mach.ReceiveRight) error {
		var in, out mach.Message
		for {
			if err := mach.Receive(ctx, port, &in); err != nil {
				return err
			}
			if in.ID == idQuit {
				return nil
			}
			so, ok := in.TakeRemote().(*mach.SendOnceRight)
			if !ok {
				in.Destroy()
				continue
			}
			out = mach.Message{ID: in.ID, Remote: mach.MoveSendOnceOf(so)}
			answer(&in, &out)
			err := mach.Send(ctx, &out)
			in.Destroy()
			if err != nil {
				return err
			}
		}
	}
}

func init() {
	baselinePeers["streampong"] = streamPong
	// oolpong hands the received memory back out of line with Deallocate, without reading it.
	baselinePeers["oolpong"] = machPeer(replyLoop(func(in, out *mach.Message) {
		if region, err := in.TakeRegion(0); err == nil {
			out.Descriptors = []mach.Descriptor{&mach.OOLDescriptor{Region: region, Deallocate: true, Copy: mach.VirtualCopy}}
		}
	}))
	// sinkpong answers with an empty message.
	baselinePeers["sinkpong"] = machPeer(replyLoop(func(*mach.Message, *mach.Message) {}))
}

// fillPattern fills b with bytes that are not all zero.
func fillPattern(b []byte) {
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
}

// sizeName names a size in KiB or MiB.
func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}
