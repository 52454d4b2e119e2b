//go:build linux

package mach_test

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkRoundTripBaseline is the yardstick for BenchmarkRoundTrip/64B: a plain SOCK_SEQPACKET
// socketpair ping-pong of 64 bytes with a child process, no Mach semantics at all.
func BenchmarkRoundTripBaseline(b *testing.B) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "seqpacket")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"=seqpong")
	cmd.ExtraFiles = []*os.File{child}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	child.Close()
	defer func() { unix.Close(fds[0]); cmd.Wait() }()
	buf := make([]byte, 64)
	in := make([]byte, 128)
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := unix.Write(fds[0], buf); err != nil {
			b.Fatal(err)
		}
		if _, err := unix.Read(fds[0], in); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// seqpong echoes datagrams on fd 3 until it closes.
func seqpong() error {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Read(3, buf)
		if err != nil || n == 0 {
			return nil
		}
		if _, err := unix.Write(3, buf[:n]); err != nil {
			return nil
		}
	}
}

func init() { baselinePeers["seqpong"] = seqpong }
