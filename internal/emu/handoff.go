//go:build linux

package emu

import (
	"encoding/binary"
	"errors"
	"io"
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
	var r record
	// A local right's channel is made outside the lock (setup.go), and the pass run again.
	kr := tx.passes(func() (kr int32) {
		r, kr = tx.right(name, dispCopySend, abi.KERN_INVALID_RIGHT, nil)
		return kr
	}, abi.KERN_RESOURCE_SHORTAGE)
	tx.ss.unpin()
	sp.mu.Unlock()
	if kr != abi.MACH_MSG_SUCCESS {
		tx.abort()
		return kr
	}
	tx.dg.descs = append(tx.dg.descs, r)
	tx.dg.nfds = len(tx.fds)
	buf := tx.dg.encode(nil)
	tx.sendAdopts(-1)
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
	name, code, err := ReceiveHandoff(sock, true)
	switch {
	case errors.Is(err, unix.EAGAIN):
		return 0, abi.KERN_OPERATION_TIMED_OUT
	case err != nil:
		return 0, abi.KERN_FAILURE
	}
	return name, code
}

// RefuseHandoff answers a hand-off request on sock with a status code instead of a send right:
// a datagram of exactly four bytes, the code in little-endian order.
func RefuseHandoff(sock int, code int32) error {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(code))
	return unix.Sendmsg(sock, b[:], nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
}

// ReceiveHandoff reads one answer to a hand-off request from sock: a send right (PassSendRight),
// which it names in this space and returns with code 0, or a refusal (RefuseHandoff), whose code
// it returns. A malformed answer gives KERN_INVALID_ARGUMENT and releases whatever came with it.
// Without wait the read does not block and err is EAGAIN when nothing has arrived; err is
// io.EOF when the peer closed the socket without answering.
func ReceiveHandoff(sock int, wait bool) (name uint32, code int32, err error) {
	flags := unix.MSG_CMSG_CLOEXEC
	if !wait {
		flags |= unix.MSG_DONTWAIT
	}
	buf := make([]byte, wireFixedSize+wireRecordSize)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, flags)
	if err == nil && n == 0 && oobn == 0 {
		// End of file, or an answer that came with the peer's hang-up: read once more.
		n, oobn, err = recvAfterEOF(sock, buf, oob)
	}
	if err != nil {
		return 0, 0, err
	}
	m := newInMsg()
	defer m.free()
	m.parseControl(oob[:oobn])
	if n == 0 && len(m.fds) == 0 {
		return 0, 0, io.EOF
	}
	if n == 4 && len(m.fds) == 0 {
		if code := int32(binary.LittleEndian.Uint32(buf)); code != 0 {
			return 0, code, nil
		}
		return 0, abi.KERN_INVALID_ARGUMENT, nil // a refusal that says "success" is no answer
	}
	if err := m.dg.decode(buf[:n], len(m.fds)); err != nil || len(m.dg.descs) != 1 ||
		m.dg.descs[0].kind != kindPort || m.dg.descs[0].typ != typePortSend {
		m.destroy()
		return 0, abi.KERN_INVALID_ARGUMENT, nil
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	name = sp.copyoutRight(m, &m.dg.descs[0])
	if name == abi.MACH_PORT_DEAD {
		return 0, abi.KERN_INVALID_NAME, nil
	}
	return name, abi.KERN_SUCCESS, nil
}

// recvAfterEOF reads sock again after a read of a SOCK_SEQPACKET socket found end of file, and
// returns what is queued there, or end of file (0, 0, nil) when nothing is. Linux can report end
// of file while a datagram the peer sent just before it closed its end sits in the queue:
// __unix_dgram_recvmsg (net/unix/af_unix.c) looks at the queue, finds it empty, and only then at
// sk_shutdown, which the peer's close (unix_release_sock) may have set in between, after its
// send queued the datagram. Taking that end of file at its word lost a look-up's answer (a
// benchmark's Dial failed with 1102 about once in 40 runs); a plain SOCK_SEQPACKET pair whose
// writer sends and closes while its reader polls without blocking shows it about once in 500
// such rounds on the 2-vCPU machines here (TestReceiveHandoffAnswerBeforeHangUp). The peer has
// closed, so nothing is queued after the second look: what it reads is all there is.
func recvAfterEOF(sock int, buf, oob []byte) (n, oobn int, err error) {
	n, oobn, _, _, err = unix.Recvmsg(sock, buf, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
	if errors.Is(err, unix.EAGAIN) {
		// A zero-length datagram was read the first time, and the peer is still there: it
		// reads as end of file, as before.
		return 0, 0, nil
	}
	return n, oobn, err
}

// ChannelFD returns the write end behind a send right, for tests that play a hostile peer. A
// send right held in its port's process gets the channel it would get if carried to another
// process.
func ChannelFD(name uint32) (int, bool) {
	tx := getTransfer()
	defer putTransfer(tx)
	defer tx.ss.discard()
	sp.mu.Lock()
	defer sp.mu.Unlock()
	for {
		e := sp.entries[name]
		if e == nil || e.send == nil {
			return -1, false
		}
		c := e.send
		if c.local == nil || c.fd >= 0 {
			return c.fd, true
		}
		if tx.exportTo(c) != abi.MACH_MSG_SUCCESS {
			return -1, false
		}
		if c.fd < 0 {
			sp.mu.Unlock()
			err := tx.ss.prepare()
			sp.mu.Lock()
			tx.ss.unpin()
			if err != nil {
				return -1, false
			}
		}
	}
}

// SendWithReplyFD sends a message with id and body on the send right dest, naming the socket fd
// as its send-once reply right: what any peer holding a send right can write on its channel,
// with a socket of its own choosing (one whose buffer it filled, say) standing in for a reply
// right. It is for tests that play a hostile peer; fd stays open.
func SendWithReplyFD(dest uint32, id int32, body []byte, fd int) int32 {
	return sendWithReplyFD(dest, id, body, fd, newPortID())
}

// sendWithReplyFD is SendWithReplyFD with the port id the forged right claims.
func sendWithReplyFD(dest uint32, id int32, body []byte, fd int, port portID) int32 {
	ch, ok := ChannelFD(dest)
	if !ok {
		return abi.MACH_SEND_INVALID_DEST
	}
	dg := datagram{id: id, bodyFD: -1, bodyLen: uint32(len(body)), body: body, nfds: 1,
		reply: record{kind: kindPort, typ: typePortSendOnce, fd: 0, counterFD: -1, id: port}}
	if err := unix.Sendmsg(ch, dg.encode(nil), unix.UnixRights(fd), nil, unix.MSG_NOSIGNAL); err != nil {
		return abi.MACH_SEND_INVALID_DEST
	}
	return abi.MACH_MSG_SUCCESS
}
