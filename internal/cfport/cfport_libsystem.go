package cfport

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"unsafe"

	"github.com/machport/machport/internal/darwin"
)

// The logic over internal/darwin's CoreFoundation and libdispatch variables. It has no build tag
// on purpose: on Apple systems cfport_darwin.go sets the two seams below to the loader and
// purego's callbacks; in Linux tests cfport_linux.go sets them to the libSystem double's
// CoreFoundation (internal/darwin/libsystemdouble/cfmessageport.go), so this code, which
// package cfmessageport's public-API-only path runs on iOS, is executed on Linux.
var (
	// loadCoreFoundation binds the CF and libdispatch variables (darwin.LoadCoreFoundation).
	loadCoreFoundation func() error
	// newCallback makes a C function pointer that calls a Go func (purego.NewCallback: at most
	// 2000 per process, never freed, so it is called once).
	newCallback func(fn any) uintptr
)

var (
	setupOnce sync.Once
	setupErr  error
	// calloutFn is the one C callout every Local shares (callbacks are never freed).
	calloutFn uintptr
)

func setup() error {
	setupOnce.Do(func() {
		// CoreFoundation is opened here, at the first CFMessagePort, not when the program starts
		// (see internal/darwin's loader on CF's main thread). It binds every CF function used
		// below or fails; the per-process variants are optional and checked where they are used.
		if loadCoreFoundation == nil {
			setupErr = errNoCF
			return
		}
		if err := loadCoreFoundation(); err != nil {
			setupErr = err
			return
		}
		for _, fn := range []any{darwin.DispatchQueueCreate, darwin.DispatchRelease} {
			if isNilFunc(fn) {
				setupErr = fmt.Errorf("libdispatch's queue functions are missing: %w", errors.ErrUnsupported)
				return
			}
		}
		calloutFn = newCallback(darwin.CFMessagePortCallBackFunc(callout))
	})
	return setupErr
}

// isNilFunc reports whether a binding was left unbound (its symbol is missing).
func isNilFunc(fn any) bool { return reflect.ValueOf(fn).IsNil() }

// callout is CF's CFMessagePortCallBack for every Local: info is the Local's handle. CF releases
// the request data after the call and the returned reply data after sending it.
func callout(_ uintptr, msgid int32, data uintptr, info uintptr) uintptr {
	reply := serve(info, msgid, dataBytes(data))
	if reply == nil {
		return 0
	}
	return newData(reply)
}

// dataBytes copies a CFData's bytes into Go memory; NULL gives empty data.
func dataBytes(d uintptr) []byte {
	if d == 0 {
		return []byte{}
	}
	n := darwin.CFDataGetLength(d)
	out := make([]byte, n)
	if n > 0 {
		copy(out, unsafe.Slice((*byte)(darwin.CFDataGetBytePtr(d)), n))
	}
	return out
}

// newData makes a CFData holding a copy of b; the caller owns it.
func newData(b []byte) uintptr {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	d := darwin.CFDataCreate(0, p, int64(len(b)))
	runtime.KeepAlive(b)
	return d
}

func cfString(s string) uintptr {
	return darwin.CFStringCreateWithCString(0, s, darwin.CFStringEncodingUTF8)
}

var errNoCF = fmt.Errorf("CoreFoundation is available on Apple systems only: %w", errors.ErrUnsupported)

func createLocal(name string, perPID bool, handle uintptr) (uintptr, uintptr, error) {
	if err := setup(); err != nil {
		return 0, 0, err
	}
	create := darwin.CFMessagePortCreateLocal
	if perPID {
		if !darwin.PrivateBuild {
			// A constant: public-only builds do not link the private variant's binding.
			return 0, 0, &darwin.PrivateAPIError{Op: "a per-process CFMessagePort"}
		}
		if create = darwin.CFMessagePortCreatePerProcessLocal; create == nil {
			return 0, 0, fmt.Errorf("CFMessagePortCreatePerProcessLocal is missing: %w", errors.ErrUnsupported)
		}
	}
	cfName := cfString(name)
	if cfName == 0 {
		return 0, 0, fmt.Errorf("the name is not valid UTF-8: %w", ErrRefused)
	}
	defer darwin.CFRelease(cfName)
	// CF copies the context; it holds no Go pointer, only the handle.
	ctx := darwin.CFMessagePortContext{Info: handle}
	shouldFreeInfo := uint8(1)
	ref := create(0, cfName, calloutFn, unsafe.Pointer(&ctx), &shouldFreeInfo)
	runtime.KeepAlive(&ctx)
	if ref == 0 {
		return 0, 0, ErrRefused
	}
	if shouldFreeInfo != 0 {
		// CF returned this process's existing port of that name, with another callout's info.
		darwin.CFRelease(ref)
		return 0, 0, ErrNameInProcess
	}
	queue := darwin.DispatchQueueCreate("com.machport.cfport.local", 0)
	if queue == 0 {
		darwin.CFMessagePortInvalidate(ref)
		darwin.CFRelease(ref)
		return 0, 0, errors.New("dispatch_queue_create failed")
	}
	darwin.CFMessagePortSetDispatchQueue(ref, queue)
	return ref, queue, nil
}

func closeLocal(ref, queue uintptr) {
	darwin.CFMessagePortInvalidate(ref) // cancels its dispatch source, destroys the receive right
	darwin.CFRelease(ref)
	darwin.DispatchRelease(queue)
}

func createRemote(name string, perPID bool, pid int) (uintptr, error) {
	if err := setup(); err != nil {
		return 0, err
	}
	cfName := cfString(name)
	if cfName == 0 {
		return 0, fmt.Errorf("the name is not valid UTF-8: %w", ErrRefused)
	}
	defer darwin.CFRelease(cfName)
	var ref uintptr
	if perPID {
		if !darwin.PrivateBuild {
			return 0, &darwin.PrivateAPIError{Op: "a per-process CFMessagePort"}
		}
		if darwin.CFMessagePortCreatePerProcessRemote == nil {
			return 0, fmt.Errorf("CFMessagePortCreatePerProcessRemote is missing: %w", errors.ErrUnsupported)
		}
		ref = darwin.CFMessagePortCreatePerProcessRemote(0, cfName, int64(pid))
	} else {
		ref = darwin.CFMessagePortCreateRemote(0, cfName)
	}
	if ref == 0 {
		return 0, ErrRefused
	}
	return ref, nil
}

// closeRemote releases a remote without invalidating it: CF hands every CFMessagePortCreateRemote
// of a name in this process the same cached object, which other Remotes may still use.
func closeRemote(ref uintptr) { darwin.CFRelease(ref) }

func isValid(ref uintptr) bool { return darwin.CFMessagePortIsValid(ref) }

func invalidate(ref uintptr) { darwin.CFMessagePortInvalidate(ref) }

func stopRunLoop(rl uintptr) { darwin.CFRunLoopStop(rl) }

// sendRequest calls CFMessagePortSendRequest. While it waits for a reply it runs this thread's
// run loop, so the goroutine must not move to another thread meanwhile; running is told that run
// loop before the call (so that abort can stop it) and 0 after it.
func sendRequest(ref uintptr, msgid int32, data []byte, timeout float64, wantReply bool, running func(rl uintptr)) ([]byte, Status) {
	var d uintptr
	if data != nil {
		if d = newData(data); d == 0 {
			return nil, TransportError
		}
		defer darwin.CFRelease(d)
	}
	var mode uintptr
	if wantReply {
		mode = darwin.ReadUintptr(darwin.CFRunLoopDefaultModeAddr)
	}
	var reply uintptr
	runtime.LockOSThread()
	running(darwin.CFRunLoopGetCurrent())
	status := Status(darwin.CFMessagePortSendRequest(ref, msgid, d, timeout, timeout, mode, &reply))
	running(0)
	runtime.UnlockOSThread()
	if reply == 0 {
		if status == Success && wantReply {
			return []byte{}, Success // CF's NULL reply stands for no data
		}
		return nil, status
	}
	defer darwin.CFRelease(reply)
	return dataBytes(reply), status
}
