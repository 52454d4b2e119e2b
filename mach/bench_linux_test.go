//go:build linux

package mach_test

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BenchmarkRoundTripBaseline is the yardstick for BenchmarkRoundTrip/64B: a plain SOCK_SEQPACKET
// socketpair ping-pong of 64 bytes with a child process, no Mach semantics at all.
func BenchmarkRoundTripBaseline(b *testing.B) {
	socketPingPong(b, "seqpong", 64, plainHop{})
}

// BenchmarkRoundTripFloor is the kernel work the emulation cannot do without, with no Mach logic:
// per hop a sendmsg of a datagram as large as the emulation's (64 bytes of body and its
// 96-byte header), and a receive that blocks in recvmsg with SO_PASSCRED (the audit trailer)
// on a thread whose id is known (so that it can be interrupted). Its ratio to the baseline is
// the least BenchmarkRoundTrip/64B could reach on the machine.
func BenchmarkRoundTripFloor(b *testing.B) {
	socketPingPong(b, "floorpong", 64+96, floorHop{})
}

// BenchmarkRoundTripNetConn is the same ping-pong through the net package (net.FileConn over the
// socketpair, goroutines parked in Go's poller): what Go code usually gets from a Unix socket.
func BenchmarkRoundTripNetConn(b *testing.B) {
	socketPingPong(b, "netpong", 64, &netHop{})
}

// hop is one side's send and receive on a channel socket.
type hop interface {
	setup(fd int) error
	close()
	send(fd int, b []byte) error
	recv(fd int, b, oob []byte) (int, error)
}

type plainHop struct{}

func (plainHop) setup(int) error { return nil }
func (plainHop) close()          {}
func (plainHop) send(fd int, b []byte) error {
	_, err := unix.Write(fd, b)
	return err
}
func (plainHop) recv(fd int, b, _ []byte) (int, error) { return unix.Read(fd, b) }

type floorHop struct{}

func (floorHop) close() {}

func (floorHop) setup(fd int) error {
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
}
func (floorHop) send(fd int, b []byte) error {
	_, err := unix.SendmsgN(fd, b, nil, nil, unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
	return err
}
func (floorHop) recv(fd int, b, oob []byte) (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	unix.Gettid()
	iov := unix.Iovec{Base: &b[0]}
	iov.SetLen(len(b))
	msg := unix.Msghdr{Iov: &iov, Control: &oob[0]}
	msg.SetIovlen(1)
	msg.SetControllen(len(oob))
	n, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_CMSG_CLOEXEC)
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

// netHop talks through a net.Conn made from the socket at setup.
type netHop struct{ c net.Conn }

func (h *netHop) setup(fd int) error {
	dup, err := unix.Dup(fd)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), "seqpacket")
	defer f.Close()
	h.c, err = net.FileConn(f) // a descriptor of its own
	return err
}
func (h *netHop) close() { h.c.Close() }
func (h *netHop) send(_ int, b []byte) error {
	_, err := h.c.Write(b)
	return err
}
func (h *netHop) recv(_ int, b, _ []byte) (int, error) { return h.c.Read(b) }

// socketPingPong measures round trips of size-byte datagrams with a child process that echoes
// them, both sides using h.
func socketPingPong(b *testing.B, role string, size int, h hop) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	child := os.NewFile(uintptr(fds[1]), "seqpacket")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.ExtraFiles = []*os.File{child}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	child.Close()
	defer func() { unix.Close(fds[0]); cmd.Wait() }()
	if err := h.setup(fds[0]); err != nil {
		b.Fatal(err)
	}
	defer h.close()
	buf := make([]byte, size)
	in := make([]byte, 1024)
	oob := make([]byte, 128)
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if err := h.send(fds[0], buf); err != nil {
			b.Fatal(err)
		}
		if _, err := h.recv(fds[0], in, oob); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// echoPeer echoes datagrams on fd 3 with h until it closes.
func echoPeer(h hop) func() error {
	return func() error {
		if err := h.setup(3); err != nil {
			return err
		}
		defer h.close()
		buf := make([]byte, 1024)
		oob := make([]byte, 128)
		for {
			n, err := h.recv(3, buf, oob)
			if err != nil || n == 0 {
				return nil
			}
			if err := h.send(3, buf[:n]); err != nil {
				return nil
			}
		}
	}
}

func init() {
	baselinePeers["seqpong"] = echoPeer(plainHop{})
	baselinePeers["floorpong"] = echoPeer(floorHop{})
	baselinePeers["netpong"] = echoPeer(&netHop{})
}
