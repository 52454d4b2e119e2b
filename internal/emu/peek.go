//go:build linux

package emu

import "github.com/machport/machport/internal/abi"

// Peeked is what mach_port_peek reports of a queued message: its sequence number, id, shape
// (from which the caller computes the size it reports) and the trailer's elements.
type Peeked struct {
	Seqno   uint32
	ID      int32
	Ports   int // port descriptors
	Mems    int // out-of-line memory descriptors
	BodyLen int // inline body bytes, before padding
	Sender  [2]uint32
	Audit   [8]uint32
	Context uint64
}

// Peek is mach_port_peek: it reports the message of a receive right's queue with sequence number
// seqno (0: the first one) without receiving it, as xnu's ipc_mqueue_peek_locked does. A name
// that is not a valid port name gives KERN_INVALID_RIGHT, one that names nothing
// KERN_INVALID_NAME, one without a receive right KERN_INVALID_RIGHT (ipc_port_translate_receive),
// and no message with that sequence number KERN_FAILURE (mach_port_peek).
//
// The emulation's queue is its channels: the messages up to the one asked for are read off them
// and put back at the head of the port's queue, in order, where the next receive takes them.
// Reading a message off a channel frees its place under the queue limit early, as for a message
// a receive with MACH_RCV_LARGE left queued; a message sent inside this process keeps its place
// and its send right (tryPort), as xnu's ipc_mqueue_peek_locked only looks.
func Peek(name, seqno uint32) (Peeked, int32) {
	if name == 0 || name == ^uint32(0) {
		return Peeked{}, abi.KERN_INVALID_RIGHT // !MACH_PORT_VALID(name)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	e := sp.entries[name]
	if e == nil {
		return Peeked{}, abi.KERN_INVALID_NAME
	}
	if e.recv == nil {
		return Peeked{}, abi.KERN_INVALID_RIGHT
	}
	p := e.recv
	head := p.seqno // the sequence number copyout gives the next message it receives (imq_seqno)
	off := uint32(0)
	switch {
	case seqno == 0:
		seqno = head
	case seqno < head:
		return Peeked{}, abi.KERN_FAILURE // received already
	default:
		off = seqno - head
	}
	var taken []*inMsg
	defer func() {
		for i := len(taken) - 1; i >= 0; i-- {
			p.unget(taken[i])
		}
	}()
	for uint32(len(taken)) <= off {
		m, kr := sp.tryPort(p)
		if kr == RcvMalformed {
			continue // dropped, as a receive drops it
		}
		if kr != abi.MACH_MSG_SUCCESS || m == nil {
			return Peeked{}, abi.KERN_FAILURE // not that many messages queued
		}
		taken = append(taken, m)
	}
	m := taken[off]
	ports, mems := m.counts()
	pk := Peeked{Seqno: seqno, ID: m.dg.id, Ports: ports, Mems: mems, BodyLen: len(m.body), Context: p.context}
	pk.Sender, pk.Audit = m.tokens()
	return pk, abi.KERN_SUCCESS
}
