//go:build linux

package emu

import (
	"sync"

	"github.com/machport/machport/internal/abi"
)

// Watches of receive rights: what runs just before this process destroys one.
var receiveWatches struct {
	sync.Mutex
	m map[uint32]receiveWatch
}

type receiveWatch struct {
	p  *port
	fn func()
}

// WatchReceive arranges for fn to run once, on the caller's goroutine and before the port dies,
// when this process destroys the receive right name with mach_port_mod_refs or
// mach_port_destruct. It fails with KERN_INVALID_RIGHT when name holds no receive right.
//
// It is how the bootstrap emulation, which plays launchd inside the registrant's process, lets
// go of a name before the name's port dies. launchd keeps its send right and its dead-name
// request in its own IPC space; here they would share the registrant's, where launchd's
// reference would outlive the port as a dead name, and where the registrant's own dead-name
// request on that name (one per name, as in xnu) would replace launchd's.
func WatchReceive(name uint32, fn func()) (cancel func(), kr int32) {
	sp.mu.Lock()
	e := sp.entries[name]
	if e == nil || e.recv == nil {
		sp.mu.Unlock()
		return nil, abi.KERN_INVALID_RIGHT
	}
	p := e.recv
	sp.mu.Unlock()
	receiveWatches.Lock()
	if receiveWatches.m == nil {
		receiveWatches.m = map[uint32]receiveWatch{}
	}
	receiveWatches.m[name] = receiveWatch{p: p, fn: fn}
	receiveWatches.Unlock()
	return func() {
		receiveWatches.Lock()
		if w, ok := receiveWatches.m[name]; ok && w.p == p {
			delete(receiveWatches.m, name)
		}
		receiveWatches.Unlock()
	}, 0
}

// receiveDying runs the watch of name if the call about to run destroys the port it was set on
// (a call that fails after all has still run it: the watch cannot be undone).
func receiveDying(name uint32, guard uint64, destruct bool) {
	receiveWatches.Lock()
	w, ok := receiveWatches.m[name]
	receiveWatches.Unlock()
	if !ok {
		return
	}
	sp.mu.Lock()
	e := sp.entries[name]
	dies := e != nil && e.recv == w.p && (!e.recv.guarded || (destruct && e.recv.context == guard))
	sp.mu.Unlock()
	if !dies {
		return
	}
	receiveWatches.Lock()
	if cur, ok := receiveWatches.m[name]; !ok || cur.p != w.p {
		receiveWatches.Unlock()
		return // cancelled meanwhile
	}
	delete(receiveWatches.m, name)
	receiveWatches.Unlock()
	w.fn()
}
