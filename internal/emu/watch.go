//go:build linux

package emu

import (
	"slices"
	"sync"

	"github.com/machport/machport/internal/abi"
)

// Watches of receive rights: what runs just before this process destroys one. A name may have
// several: launchd keeps a port under every name it was registered with (job_mig_register2 in
// launchd-842 src/core.c makes a machservice per name), and each name must go with the port.
var receiveWatches struct {
	sync.Mutex
	m map[uint32][]*receiveWatch
}

type receiveWatch struct {
	p  *port
	fn func()
}

// WatchReceive arranges for fn to run once, on the caller's goroutine and before the port dies,
// when this process destroys the receive right name with mach_port_mod_refs or
// mach_port_destruct. It fails with KERN_INVALID_RIGHT when name holds no receive right. Watches
// of one name add up: each runs, in the order they were set.
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
	w := &receiveWatch{p: p, fn: fn}
	receiveWatches.Lock()
	if receiveWatches.m == nil {
		receiveWatches.m = map[uint32][]*receiveWatch{}
	}
	receiveWatches.m[name] = append(receiveWatches.m[name], w)
	receiveWatches.Unlock()
	return func() {
		receiveWatches.Lock()
		takeWatch(name, w)
		receiveWatches.Unlock()
	}, 0
}

// takeWatch removes w from name's watches and reports whether it was there. The caller holds
// receiveWatches.
func takeWatch(name uint32, w *receiveWatch) bool {
	ws := receiveWatches.m[name]
	i := slices.Index(ws, w)
	if i < 0 {
		return false
	}
	ws = slices.Delete(ws, i, i+1)
	if len(ws) == 0 {
		delete(receiveWatches.m, name)
	} else {
		receiveWatches.m[name] = ws
	}
	return true
}

// receiveDying runs the watches of name that were set on the port the call about to run
// destroys (a call that fails after all has still run them: a watch cannot be undone).
func receiveDying(name uint32, guard uint64, destruct bool) {
	receiveWatches.Lock()
	ws := slices.Clone(receiveWatches.m[name])
	receiveWatches.Unlock()
	if len(ws) == 0 {
		return
	}
	sp.mu.Lock()
	e := sp.entries[name]
	var p *port
	if e != nil && e.recv != nil && (!e.recv.guarded || (destruct && e.recv.context == guard)) {
		p = e.recv
	}
	sp.mu.Unlock()
	if p == nil {
		return
	}
	for _, w := range ws {
		receiveWatches.Lock()
		mine := w.p == p && takeWatch(name, w) // not cancelled meanwhile
		receiveWatches.Unlock()
		if mine {
			w.fn()
		}
	}
}
