//go:build linux

package emu

import (
	"errors"
	"time"

	"github.com/machport/machport/internal/abi"
	"golang.org/x/sys/unix"
)

// PassSendRight sends a copy of the send right name over a connected AF_UNIX socket (of any
// type), as a message with one port descriptor. It is how a right first reaches another
// process without a name service: the bootstrap emulation and cross-process tests use it.
func PassSendRight(sock int, name uint32) int32 {
	tx := getTransfer()
	defer putTransfer(tx)
	sp.mu.Lock()
	r, kr := tx.right(name, dispCopySend, abi.KERN_INVALID_RIGHT, nil)
	sp.mu.Unlock()
	if kr != abi.MACH_MSG_SUCCESS {
		tx.abort()
		return kr
	}
	tx.dg.descs = append(tx.dg.descs, r)
	tx.dg.nfds = len(tx.fds)
	buf := tx.dg.encode(nil)
	err := unix.Sendmsg(sock, buf, unix.UnixRights(tx.fds...), nil, unix.MSG_NOSIGNAL)
	tx.abort()
	if err != nil {
		return abi.KERN_FAILURE
	}
	return abi.KERN_SUCCESS
}

// AcceptSendRight receives a send right that PassSendRight sent on sock and names it in this
// space. The socket must be in blocking mode; timeout < 0 waits forever.
func AcceptSendRight(sock int, timeout time.Duration) (uint32, int32) {
	if timeout >= 0 {
		tv := unix.NsecToTimeval(timeout.Nanoseconds())
		_ = unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}
	buf := make([]byte, wireFixedSize+wireRecordSize)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.EAGAIN) {
			return 0, abi.KERN_OPERATION_TIMED_OUT
		}
		return 0, abi.KERN_FAILURE
	}
	m := newInMsg()
	defer m.free()
	m.parseControl(oob[:oobn])
	if err := m.dg.decode(buf[:n], len(m.fds)); err != nil || len(m.dg.descs) != 1 ||
		m.dg.descs[0].kind != kindPort || m.dg.descs[0].typ != typePortSend {
		m.destroy()
		return 0, abi.KERN_INVALID_ARGUMENT
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	name := sp.copyoutRight(m, &m.dg.descs[0])
	if name == abi.MACH_PORT_DEAD {
		return 0, abi.KERN_INVALID_NAME
	}
	return name, abi.KERN_SUCCESS
}

// ChannelFD returns the write end behind a send right, for tests that play a hostile peer.
func ChannelFD(name uint32) (int, bool) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.entries[name]
	if e == nil || e.send == nil {
		return -1, false
	}
	return e.send.fd, true
}
