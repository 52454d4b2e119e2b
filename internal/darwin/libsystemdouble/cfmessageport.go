//go:build linux

package libsystemdouble

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/machport/machport/internal/darwin"
)

// CoreFoundation's public CFMessagePort functions, as internal/cfport calls them: what package
// cfmessageport's public-API-only path (the default on iOS) runs on. CFMessagePortCreateLocal,
// CreateRemote, SendRequest, SetDispatchQueue, Invalidate, IsValid and IsRemote, the CFData
// calls, dispatch_queue_create and dispatch_release, CFRunLoopGetCurrent and CFRunLoopStop, and
// kCFRunLoopDefaultMode.
//
// The protocol underneath is not the double's: this package cannot import cfmessageport (which
// imports mach, which imports this package), so a test hands in the native Go implementation
// (InstallCoreFoundation), the one that is byte-compatible with CF's (cfmessageport-wire.md). As
// in CF (CFMessagePort.c, CF-1153.18):
//   - CFMessagePortCreateLocal checks the name in or registers it (__CFMessagePortCreateLocal);
//     when launchd refuses, CF logs launchd's code and returns NULL. When this process already
//     has a valid local port of that name, CF returns it retained and sets *shouldFreeInfo,
//     leaving the new context unused.
//   - A local port's callout runs on the dispatch queue it is scheduled on
//     (CFMessagePortSetDispatchQueue), one request at a time for a serial queue; until then
//     requests wait. CF releases the request data after the callout, and the reply data after
//     sending it.
//   - CFMessagePortCreateRemote hands every caller in a process the same valid remote of a name
//     (retained), and NULL when the look-up fails.
//   - CFMessagePortSendRequest with a NULL reply mode sends one way; with a mode it waits for the
//     reply and returns it in *returnData, which the caller releases.
//   - CFMessagePortInvalidate withdraws a local port's name; the last CFRelease of a port
//     invalidates it too.
//   - While CFMessagePortSendRequest waits for a reply it runs the calling thread's run loop
//     (CFRunLoopGetCurrent); each time the run returns it checks for the reply, the timeout, and
//     whether the remote is still valid, and returns kCFMessagePortBecameInvalidError if not.
//     CFRunLoopStop makes a run return, and does nothing while the loop does not run (CFRunLoop.c,
//     CFRunLoopStop: only with a current mode). The double's thread is the OS thread (gettid):
//     cfport locks the goroutine to it for the call.
//   - CF makes one remote per name in a process, with one reply port that every waiting thread's
//     run loop receives on, so concurrent SendRequest calls on one remote may leave a reply to
//     another thread's run loop; the double counts them (SendRequestsInFlight) so that a test
//     catches a caller that does not serialize them.
//
// Callbacks: on Apple systems the callout is a C function pointer made with purego.NewCallback;
// here NewCallback hands out a token that CFMessagePortCreateLocal maps back to the Go func.

// MessagePorts is the CFMessagePort protocol under the double's CoreFoundation: in machport's
// tests, the native Go implementation of package cfmessageport.
type MessagePorts interface {
	// Listen serves name, calling serve for each request, until stop is called. A refused name
	// fails it.
	Listen(name string, serve func(msgid int32, data []byte) []byte) (stop func(), err error)
	// Dial looks name up.
	Dial(name string) (MessagePortRemote, error)
}

// MessagePortRemote is a client of one service.
type MessagePortRemote interface {
	// Request sends msgid and data (nil: CF's "no data"); with wantReply it waits for the reply.
	// status is a CFMessagePortSendRequest result (0: kCFMessagePortSuccess).
	Request(msgid int32, data []byte, timeout time.Duration, wantReply bool) (reply []byte, status int32)
	// Invalid reports whether the service is known to be gone.
	Invalid() bool
	// Close releases the client.
	Close()
}

// CF type ids of this file's objects.
const (
	cfMessagePortTypeID  = 35
	dispatchQueueTypeID  = 1000 // dispatch objects are not CF objects; the double counts them alike
	kCFMessagePortIsInv  = -3   // kCFMessagePortIsInvalid
	kCFMessagePortTransp = -4   // kCFMessagePortTransportError
	// kCFMessagePortReceiveTimeout and kCFMessagePortBecameInvalidError.
	kCFMessagePortRcvTimeout = -2
	kCFMessagePortBecameInv  = -5
)

// portsMade counts the local ports and remotes CoreFoundation made (MessagePortsMade).
var portsMade struct{ locals, remotes atomic.Int64 }

// MessagePortsMade returns how many local ports and remotes the double's CoreFoundation has made
// in this process: a test's proof that a path went through CF.
func MessagePortsMade() (locals, remotes int) {
	return int(portsMade.locals.Load()), int(portsMade.remotes.Load())
}

var cfPorts struct {
	sync.Mutex
	impl    MessagePorts
	locals  map[string]uintptr // valid local ports by name
	remotes map[string]uintptr // valid remotes by name (CF's __CFMessagePortCache)
}

// runLoopDefaultMode is kCFRunLoopDefaultMode: a constant CFString, never released.
var runLoopDefaultMode = new(uintptr)

// InstallCoreFoundation makes the double's CoreFoundation run CFMessagePort on ports (and
// LoadCoreFoundation succeed), for the rest of the process. It installs the double (Install).
func InstallCoreFoundation(ports MessagePorts) {
	Install()
	cfPorts.Lock()
	defer cfPorts.Unlock()
	cfPorts.impl = ports
}

// LoadCoreFoundation stands for darwin.LoadCoreFoundation in cfport's Linux seam: it succeeds
// once InstallCoreFoundation ran, and otherwise fails with errors.ErrUnsupported.
func LoadCoreFoundation() error {
	cfPorts.Lock()
	defer cfPorts.Unlock()
	if cfPorts.impl == nil {
		return fmt.Errorf("libsystemdouble: no CoreFoundation on Linux unless a test installs the double's (InstallCoreFoundation): %w", errors.ErrUnsupported)
	}
	return nil
}

var callbacks struct {
	sync.Mutex
	fns []any
}

// callbackBase is where NewCallback's tokens start: they are not addresses, nothing calls them.
const callbackBase = 0xcb0000

// NewCallback stands for purego.NewCallback: it returns a token for fn that the double's C
// functions map back to fn. Like purego's callbacks, they are never freed.
func NewCallback(fn any) uintptr {
	callbacks.Lock()
	defer callbacks.Unlock()
	callbacks.fns = append(callbacks.fns, fn)
	return callbackBase + uintptr(len(callbacks.fns)-1)*16
}

func callback(addr uintptr) any {
	callbacks.Lock()
	defer callbacks.Unlock()
	i := (addr - callbackBase) / 16
	if addr < callbackBase || i >= uintptr(len(callbacks.fns)) {
		panic("libsystemdouble: a callout that NewCallback did not make")
	}
	return callbacks.fns[i]
}

// messagePort is a CFMessagePort of the double.
type messagePort struct {
	name   string
	remote MessagePortRemote // a remote's client; nil for a local port
	valid  atomic.Bool

	// A local port's callout and its context's info, its scheduling, and its serial queue.
	callout   func(port uintptr, msgid int32, data, info uintptr) uintptr
	info      uintptr
	scheduled chan struct{}
	schedOnce sync.Once
	serial    sync.Mutex
	stop      func()

	invalidateOnce sync.Once
}

func portOf(h uintptr) *messagePort {
	o := cfGet(h)
	p, ok := o.more.(*messagePort)
	if !ok || o.typeID != cfMessagePortTypeID {
		panic("libsystemdouble: a CFMessagePort call on another CF type")
	}
	return p
}

func installCFMessagePort() {
	*runLoopDefaultMode = newCF(&cfObject{typeID: cfStringTypeID, str: "kCFRunLoopDefaultMode"})
	darwin.CFRunLoopDefaultModeAddr = uintptr(unsafe.Pointer(runLoopDefaultMode))
	darwin.CFDataGetLength = func(d uintptr) int64 { return int64(len(dataOf(d))) }
	darwin.CFDataGetBytePtr = func(d uintptr) unsafe.Pointer {
		b := dataOf(d)
		if len(b) == 0 {
			return nil
		}
		return unsafe.Pointer(&b[0])
	}
	darwin.DispatchQueueCreate = func(string, uintptr) uintptr { return newCF(&cfObject{typeID: dispatchQueueTypeID}) }
	darwin.DispatchRelease = cfRelease
	darwin.CFMessagePortCreateLocal = cfMessagePortCreateLocal
	darwin.CFMessagePortCreateRemote = cfMessagePortCreateRemote
	darwin.CFMessagePortSendRequest = cfMessagePortSendRequest
	darwin.CFMessagePortSetDispatchQueue = func(port, queue uintptr) {
		if p := portOf(port); queue != 0 && p.remote == nil {
			p.schedOnce.Do(func() { close(p.scheduled) })
		}
	}
	darwin.CFMessagePortInvalidate = func(port uintptr) { portOf(port).invalidate(port) }
	darwin.CFMessagePortIsValid = func(port uintptr) bool {
		p := portOf(port)
		return p.valid.Load() && (p.remote == nil || !p.remote.Invalid())
	}
	darwin.CFMessagePortIsRemote = func(port uintptr) bool { return portOf(port).remote != nil }
	darwin.CFRunLoopGetCurrent = cfRunLoopGetCurrent
	darwin.CFRunLoopStop = cfRunLoopStop
}

// runLoop is a thread's CFRunLoop in the double: stop is set while CFMessagePortSendRequest
// runs it.
type runLoop struct {
	mu   sync.Mutex
	stop chan struct{}
}

// runLoopBase is where the double's run loop handles start: tokens (base + thread id), not CF
// objects, as CFRunLoopGetCurrent's result is not owned by the caller.
const runLoopBase = 0x7100000000

var runLoops struct {
	sync.Mutex
	byThread map[int]*runLoop
}

func cfRunLoopGetCurrent() uintptr {
	tid := syscall.Gettid()
	runLoops.Lock()
	defer runLoops.Unlock()
	if runLoops.byThread == nil {
		runLoops.byThread = map[int]*runLoop{}
	}
	if runLoops.byThread[tid] == nil {
		runLoops.byThread[tid] = &runLoop{}
	}
	return runLoopBase + uintptr(tid)
}

func runLoopOf(h uintptr) *runLoop {
	runLoops.Lock()
	defer runLoops.Unlock()
	rl := runLoops.byThread[int(h-runLoopBase)]
	if h < runLoopBase || rl == nil {
		panic("libsystemdouble: a CFRunLoop that CFRunLoopGetCurrent did not return")
	}
	return rl
}

// cfRunLoopStop makes the loop's current run return; a loop that does not run ignores it.
func cfRunLoopStop(h uintptr) {
	rl := runLoopOf(h)
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.stop != nil {
		close(rl.stop)
		rl.stop = nil
	}
}

// run starts one run of the loop and returns what ends it early.
func (rl *runLoop) run() <-chan struct{} {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.stop = make(chan struct{})
	return rl.stop
}

func (rl *runLoop) endRun() {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.stop = nil
}

// result is what the protocol underneath answered a request.
type result struct {
	reply  []byte
	status int32
}

// inFlight counts the CFMessagePortSendRequest calls in progress per remote name, and the most
// seen at once (SendRequestsInFlight).
var inFlight struct {
	sync.Mutex
	now, most map[string]int
}

// OnSendRequest, when set by a test, is called when a CFMessagePortSendRequest call starts, with
// the remote's name and how many calls on that name are then in progress (this one included).
var OnSendRequest func(name string, inFlight int)

// OnSendRequestReturn, when set by a test, is called when a CFMessagePortSendRequest call that
// waited for a reply returns, with the remote's name and the call's status.
var OnSendRequestReturn func(name string, status int32)

// SendRequestsInFlight returns how many CFMessagePortSendRequest calls on remotes of name are in
// progress, and the most there have been at once in this process.
func SendRequestsInFlight(name string) (now, most int) {
	inFlight.Lock()
	defer inFlight.Unlock()
	return inFlight.now[name], inFlight.most[name]
}

func countSendRequest(name string, delta int) int {
	inFlight.Lock()
	defer inFlight.Unlock()
	if inFlight.now == nil {
		inFlight.now, inFlight.most = map[string]int{}, map[string]int{}
	}
	inFlight.now[name] += delta
	n := inFlight.now[name]
	inFlight.most[name] = max(inFlight.most[name], n)
	return n
}

func dataOf(d uintptr) []byte {
	o := cfGet(d)
	if o.typeID != cfDataTypeID {
		panic("libsystemdouble: a CFData call on another CF type")
	}
	b, _ := o.more.([]byte)
	return b
}

func newData(b []byte) uintptr { return newCF(&cfObject{typeID: cfDataTypeID, more: bytes.Clone(b)}) }

func impl() MessagePorts {
	cfPorts.Lock()
	defer cfPorts.Unlock()
	if cfPorts.impl == nil {
		panic("libsystemdouble: CFMessagePort called before InstallCoreFoundation")
	}
	return cfPorts.impl
}

func cfMessagePortCreateLocal(_, name, callout uintptr, context unsafe.Pointer, shouldFreeInfo *uint8) uintptr {
	n := cfString(name).str
	ports := impl()
	cfPorts.Lock()
	if h, ok := cfPorts.locals[n]; ok {
		cfPorts.Unlock()
		*shouldFreeInfo = 1
		return cfRetain(h)
	}
	cfPorts.Unlock()
	fn, ok := callback(callout).(darwin.CFMessagePortCallBackFunc)
	if !ok {
		panic("libsystemdouble: CFMessagePortCreateLocal's callout is not a CFMessagePortCallBack")
	}
	p := &messagePort{name: n, callout: fn, info: (*darwin.CFMessagePortContext)(context).Info,
		scheduled: make(chan struct{})}
	h := newCF(&cfObject{typeID: cfMessagePortTypeID, more: p})
	cfGet(h).free = func() { p.invalidate(h) }
	stop, err := ports.Listen(n, func(msgid int32, data []byte) []byte { return p.deliver(h, msgid, data) })
	if err != nil {
		// CF logs launchd's refusal ("bootstrap_register(): failed 1100 ...") and returns NULL.
		p.invalidateOnce.Do(func() {})
		cfRelease(h)
		return 0
	}
	p.stop = stop
	p.valid.Store(true)
	cfPorts.Lock()
	if cfPorts.locals == nil {
		cfPorts.locals = map[string]uintptr{}
	}
	cfPorts.locals[n] = h
	cfPorts.Unlock()
	portsMade.locals.Add(1)
	*shouldFreeInfo = 0
	return h
}

// deliver runs the callout for one request, once the port is scheduled, one at a time.
func (p *messagePort) deliver(h uintptr, msgid int32, data []byte) []byte {
	<-p.scheduled
	p.serial.Lock()
	defer p.serial.Unlock()
	if !p.valid.Load() {
		return nil
	}
	d := newData(data)
	r := p.callout(h, msgid, d, p.info)
	cfRelease(d) // CF releases the request data after the callout
	if r == 0 {
		return nil
	}
	reply := bytes.Clone(dataOf(r))
	cfRelease(r) // and the reply data after sending it
	return reply
}

func (p *messagePort) invalidate(h uintptr) {
	p.invalidateOnce.Do(func() {
		p.valid.Store(false)
		cfPorts.Lock()
		if p.remote == nil && cfPorts.locals[p.name] == h {
			delete(cfPorts.locals, p.name)
		}
		if p.remote != nil && cfPorts.remotes[p.name] == h {
			delete(cfPorts.remotes, p.name)
		}
		cfPorts.Unlock()
		if p.remote != nil {
			p.remote.Close()
			return
		}
		p.schedOnce.Do(func() { close(p.scheduled) }) // waiting requests get no reply
		if p.stop != nil {
			p.stop()
		}
	})
}

func cfMessagePortCreateRemote(_, name uintptr) uintptr {
	n := cfString(name).str
	ports := impl()
	cfPorts.Lock()
	if h, ok := cfPorts.remotes[n]; ok && !portOf(h).remote.Invalid() {
		cfPorts.Unlock()
		return cfRetain(h)
	}
	cfPorts.Unlock()
	r, err := ports.Dial(n)
	if err != nil {
		return 0
	}
	p := &messagePort{name: n, remote: r}
	p.valid.Store(true)
	h := newCF(&cfObject{typeID: cfMessagePortTypeID, more: p})
	cfGet(h).free = func() { p.invalidate(h) }
	cfPorts.Lock()
	if cfPorts.remotes == nil {
		cfPorts.remotes = map[string]uintptr{}
	}
	cfPorts.remotes[n] = h
	cfPorts.Unlock()
	portsMade.remotes.Add(1)
	return h
}

func cfMessagePortSendRequest(remote uintptr, msgid int32, data uintptr, sendTimeout, rcvTimeout float64, replyMode uintptr, returnData *uintptr) int32 {
	p := portOf(remote)
	if p.remote == nil {
		return kCFMessagePortTransp // CF: a local port cannot send
	}
	if !p.valid.Load() || p.remote.Invalid() {
		return kCFMessagePortIsInv
	}
	var b []byte
	if data != 0 {
		b = bytes.Clone(dataOf(data))
	}
	n := countSendRequest(p.name, 1)
	defer countSendRequest(p.name, -1)
	if hook := OnSendRequest; hook != nil {
		hook(p.name, n)
	}
	timeout := time.Duration(max(sendTimeout, rcvTimeout) * float64(time.Second))
	if replyMode == 0 {
		_, status := p.remote.Request(msgid, b, timeout, false)
		return status
	}
	// The reply comes to the remote's reply port while this thread runs its run loop.
	done := make(chan result, 1)
	go func() {
		reply, status := p.remote.Request(msgid, b, timeout, true)
		done <- result{reply, status}
	}()
	rl := runLoopOf(cfRunLoopGetCurrent())
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	status := p.wait(rl, done, deadline.C, returnData)
	if hook := OnSendRequestReturn; hook != nil {
		hook(p.name, status)
	}
	return status
}

// wait runs the thread's run loop until the reply comes, the timeout passes, or a run returns
// with the remote no longer valid (CFMessagePortSendRequest's loop).
func (p *messagePort) wait(rl *runLoop, done chan result, deadline <-chan time.Time, returnData *uintptr) int32 {
	for {
		stopped := rl.run()
		select {
		case res := <-done:
			rl.endRun()
			if res.status == 0 && returnData != nil {
				*returnData = 0
				if res.reply != nil {
					*returnData = newData(res.reply)
				}
			}
			return res.status
		case <-deadline:
			rl.endRun()
			if !p.valid.Load() || p.remote.Invalid() {
				return kCFMessagePortBecameInv
			}
			return kCFMessagePortRcvTimeout
		case <-stopped:
			rl.endRun()
			// CF: after CFRunLoopRunInMode returns, a remote no longer valid ends the wait.
			if !p.valid.Load() || p.remote.Invalid() {
				return kCFMessagePortBecameInv
			}
		}
	}
}
