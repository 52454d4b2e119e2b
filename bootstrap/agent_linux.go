//go:build linux

package bootstrap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/emu"
	"golang.org/x/sys/unix"
)

// agent is what a process serving names in a directory keeps for all of them: one listening
// SOCK_SEQPACKET socket that every name's link there leads to, and the flocked lock whose holder owns the names'
// records (claim_linux.go). It runs while the process serves a name: the first registration
// starts it and the last withdrawal stops it. Its cost is agentFDs descriptors whatever the
// number of names.
type agent struct {
	e        *emulated
	dir, id  string
	sockPath string
	lockPath string
	lockFD   int
	lnMu     sync.Mutex
	ln       *net.UnixListener // the listener serve accepts on; under lnMu
	next     *net.UnixListener // one bound again at sockPath, which serve takes up (rebind); under lnMu
	sockID   fileID            // the socket file the newest listener made; under lnMu
	stopping bool              // stop has begun: nothing is bound again; under lnMu
	watch    *sockWatch        // notices the socket file's removal
	ctx      context.Context
	cancel   context.CancelFunc
	accepted chan struct{} // closed when the accept loop has ended
	waitMu   sync.Mutex
	waitq    []*net.UnixConn // connections whose request is awaited, oldest first (maxWaiting)
	answers  sync.WaitGroup  // look-ups being answered
	stopOnce sync.Once
	names    int        // how many names lead here, and registrations under way; under e.mu
	failed   bool       // its socket accepts no more (withdrawAll); under e.mu
	dead     *deadNames // the dead-name notifications of rights to other processes' ports; under e.mu
}

// agentFDs is how many descriptors the agent holds: its lock, its listening socket and the
// inotify instance that watches the socket's file (sockWatch).
const agentFDs = 3

// requestWait bounds how long the agent waits for a look-up's request once it has accepted the
// connection. A look-up sends it right after connecting, usually before the accept.
const requestWait = 5 * time.Second

// maxWaiting bounds the connections whose request the agent waits for at once (each holds a
// descriptor and a goroutine for up to requestWait), so that peers that connect and say nothing
// cannot pin more of the serving process's descriptors than that. Past it the agent gives up on
// the connection that has waited longest, not the new one: a look-up's request follows its
// connect at once, so the oldest is the likeliest to be silent, and a crowd of look-ups caught
// between their connect and their request (64 requester processes starting together on a loaded
// machine) is not turned away.
const maxWaiting = 64

// startAgent makes this process's agent in dir: under the directory's lock, so that nobody
// judging agents by their locks sees one whose lock is not held yet.
func startAgent(e *emulated, dir string) (a *agent, err error) {
	l, err := lockDir(context.Background(), dir)
	if err != nil {
		return nil, err
	}
	defer func() { l.unlock(a == nil || a.ln == nil) }()
	if err := os.Mkdir(filepath.Join(dir, agentsDir), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("agents directory: %w", err)
	}
	sweepDeadAgents(dir)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	a = &agent{e: e, dir: dir, id: fmt.Sprintf("a-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:])),
		accepted: make(chan struct{})}
	a.sockPath, a.lockPath = agentPaths(dir, a.id)
	a.lockFD, err = unix.Open(a.lockPath, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("agent lock: %w", err)
	}
	if err := unix.Flock(a.lockFD, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		a.removeLock()
		return nil, fmt.Errorf("agent lock: %w", err)
	}
	_, _ = unix.Write(a.lockFD, fmt.Appendf(nil, "%d\n", os.Getpid())) // for people
	ln, id, err := listenAt(a.sockPath)
	if err != nil {
		a.removeLock()
		return nil, err
	}
	a.ln, a.sockID = ln, id
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.watch = watchSocket(a)
	go a.serve()
	return a, nil
}

// fileID tells one file from another: its device and inode.
type fileID struct{ dev, ino uint64 }

// listenAt makes a listening socket at path, which must be free, and says which file it made.
func listenAt(path string) (*net.UnixListener, fileID, error) {
	addr, done, err := sockAddr(path)
	if err != nil {
		return nil, fileID{}, err
	}
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: addr, Net: "unixpacket"})
	done()
	if err != nil {
		return nil, fileID{}, err
	}
	ln.SetUnlinkOnClose(false) // stop unlinks, in its own order
	id, _ := statID(path)      // gone already: the watch, or the next registration, binds it again
	return ln, id, nil
}

// statID says which file path names, without following a symbolic link.
func statID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{dev: st.Dev, ino: st.Ino}, nil
}

// rebind binds the agent's socket again at its path when the file there is no longer the one
// its listener made: something else removed it (systemd-tmpfiles cleaning an old file, a user's
// rm). Every name's link leads to that path, so until then look-ups of a live process's names
// find nothing (they say so, and leave its entries alone: its lock is held). The agent binds again
// rather than look-ups routing round the missing file because a look-up can reach the listener
// only through a path, and a new file at the same path mends every link at once, for nothing on
// the look-up's path (one connect through the link, as before). The old listener's queue is taken
// up by serve (takeOver), so no look-up that reached it before the removal is lost. It runs at
// each registration of another name (a cheap lstat) and when the watch (sockWatch) says.
func (a *agent) rebind() error {
	a.lnMu.Lock()
	defer a.lnMu.Unlock()
	if a.stopping {
		return nil
	}
	if id, err := statID(a.sockPath); err == nil && id == a.sockID {
		return nil
	}
	if err := os.Mkdir(filepath.Join(a.dir, agentsDir), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("agents directory: %w", err)
	}
	// Whatever stands at the path now is not this agent's socket, and the path is this agent's
	// alone (its id is random): it goes.
	if err := os.Remove(a.sockPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("agent socket: %w", err)
	}
	ln, id, err := listenAt(a.sockPath)
	if err != nil {
		return fmt.Errorf("agent socket bound again: %w", err)
	}
	if a.next != nil { // bound again already, and removed again before serve took it up
		_ = a.next.Close()
	}
	a.next, a.sockID = ln, id
	a.watch.add(a.sockPath)
	// serve's accept returns at once on a past deadline and takes up the new listener.
	return a.ln.SetDeadline(time.Unix(1, 0))
}

// takeOver moves serve from listener old, whose accept returned at its deadline, to the one
// rebind made, if any: first it accepts what old still has queued (look-ups that reached it
// before its file went), then closes it. It reports whether serve goes on.
func (a *agent) takeOver(old *net.UnixListener) bool {
	a.lnMu.Lock()
	next, stopping := a.next, a.stopping
	if next == nil || stopping {
		// Cleared under lnMu, so that a rebind's deadline cannot be lost to this one.
		ok := !stopping && old.SetDeadline(time.Time{}) == nil
		a.lnMu.Unlock()
		return ok
	}
	a.ln, a.next = next, nil
	a.lnMu.Unlock()
	for _, c := range acceptQueued(old) {
		a.take(c)
	}
	_ = old.Close()
	return true
}

// acceptQueued accepts, without waiting, the connections queued on ln.
func acceptQueued(ln *net.UnixListener) []*net.UnixConn {
	raw, err := ln.SyscallConn()
	if err != nil {
		return nil
	}
	var fds []int
	_ = raw.Control(func(fd uintptr) {
		for {
			nfd, _, err := unix.Accept4(int(fd), unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK)
			if errors.Is(err, unix.EINTR) || errors.Is(err, unix.ECONNABORTED) {
				continue
			}
			if err != nil {
				return
			}
			fds = append(fds, nfd)
		}
	})
	var conns []*net.UnixConn
	for _, fd := range fds {
		f := os.NewFile(uintptr(fd), "look-up")
		c, err := net.FileConn(f)
		_ = f.Close()
		if uc, ok := c.(*net.UnixConn); ok && err == nil {
			conns = append(conns, uc)
		} else if c != nil {
			_ = c.Close()
		}
	}
	return conns
}

// sockWatch tells the agent when its socket's file loses a link or moves (inotify's IN_ATTRIB
// comes with unlink(2), as the link count drops: fsnotify_link_count in vfs_unlink, fs/namei.c),
// so that it binds again at once. It watches that one file, so removals of other agents' files
// wake nobody. Without inotify (a user has 128 instances by default, shared by every program
// of the user) it checks the file every pollSocketEvery instead: one lstat, no descriptor.
type sockWatch struct {
	f    *os.File      // the inotify instance, or nil when the file is polled
	wd   int           // the watch of the current socket file; under the agent's lnMu
	quit chan struct{} // closed by stop when the file is polled
	done chan struct{}
}

// pollSocketEvery is how often an agent without inotify checks its socket's file.
const pollSocketEvery = time.Second

// noInotify, when set, makes agents poll their socket's file as without inotify (tests).
var noInotify atomic.Bool

// watchSocket starts the watch of a's socket.
func watchSocket(a *agent) *sockWatch {
	w := &sockWatch{wd: -1, quit: make(chan struct{}), done: make(chan struct{})}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err == nil && noInotify.Load() {
		unix.Close(fd)
		err = unix.EMFILE
	}
	if err != nil {
		go func() {
			defer close(w.done)
			t := time.NewTicker(pollSocketEvery)
			defer t.Stop()
			for {
				select {
				case <-w.quit:
					return
				case <-t.C:
					_ = a.rebind()
				}
			}
		}()
		return w
	}
	w.f = os.NewFile(uintptr(fd), "inotify")
	w.add(a.sockPath)
	go func() {
		defer close(w.done)
		buf := make([]byte, 4096)
		for {
			if _, err := w.f.Read(buf); err != nil {
				return // stop closed it
			}
			// Any event (the file's own only, or an overflow) is checked the same way.
			_ = a.rebind()
		}
	}()
	return w
}

// add watches the file at path instead of the one watched before. A file gone already is found
// by the next check. The caller holds the agent's lnMu.
func (w *sockWatch) add(path string) {
	if w.f == nil {
		return
	}
	raw, err := w.f.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		wd, err := unix.InotifyAddWatch(int(fd), path, unix.IN_ATTRIB|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF)
		if err != nil {
			return
		}
		if w.wd >= 0 && w.wd != wd {
			_, _ = unix.InotifyRmWatch(int(fd), uint32(w.wd))
		}
		w.wd = wd
	})
}

// stop ends the watch and waits for its goroutine.
func (w *sockWatch) stop() {
	if w.f != nil {
		_ = w.f.Close()
	} else {
		close(w.quit)
	}
	<-w.done
}

// stop ends the agent once no name leads to it: the socket file goes first, then the listener
// (a connection still queued on it is reset: the look-up says the owner went away), the
// look-ups being answered, the dead-name receiver, and last the lock. It waits for all of that.
func (a *agent) stop() {
	a.stopOnce.Do(func() {
		a.lnMu.Lock()
		a.stopping = true
		_ = os.Remove(a.sockPath)
		_ = a.ln.Close()
		if a.next != nil {
			_ = a.next.Close()
		}
		a.lnMu.Unlock()
		a.watch.stop()
		a.cancel()
		<-a.accepted
		a.answers.Wait()
		a.e.mu.Lock()
		dead := a.dead
		a.dead = nil
		a.e.mu.Unlock()
		if dead != nil {
			dead.stop()
		}
		a.release()
	})
}

// release removes and closes the agent's lock, the last thing it holds. Its removal needs no
// lock of the directory (nobody judges an agent by a lock file that is gone), but tidying the
// directory (dirLock.unlock) does: that is done when the directory's lock is free, and otherwise
// left to whoever next releases it tidy, so that withdrawing a name (Registration.Close,
// ReceiveRight.Close) never waits for another process.
func (a *agent) release() {
	l, err := tryLockDir(a.dir)
	a.removeLock()
	if err == nil {
		l.unlock(true)
	}
}

// removeLock removes and closes the agent's lock.
func (a *agent) removeLock() {
	_ = os.Remove(a.lockPath)
	_ = unix.Close(a.lockFD)
}

// serve answers look-ups until the agent stops. An accept that fails for want of descriptors
// is retried: the names stay served. One that fails for good withdraws every name, since none
// can be looked up any more.
func (a *agent) serve() {
	defer close(a.accepted)
	for delay := time.Duration(0); ; {
		a.lnMu.Lock()
		ln := a.ln
		a.lnMu.Unlock()
		conn, err := accept(ln)
		if err == nil {
			delay = 0
			a.take(conn)
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return // only stop closes the listener serve accepts on
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if a.takeOver(ln) {
				continue
			}
			return
		}
		if !acceptRetries(err) {
			// Another goroutine withdraws the names: the last withdrawal stops the agent,
			// which waits for this loop to end.
			go a.e.withdrawAll(a)
			return
		}
		// Linux's accept4 takes the new descriptor before it looks for a connection
		// (__sys_accept4_file in net/socket.c), so in a process at its open-file limit every
		// accept fails, whether a look-up waits or not. The names are still served: wait, as
		// net/http's Server.Serve does after a temporary accept error, and try again.
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		select {
		case <-a.ctx.Done(): // stopped: the next accept says so
		case <-time.After(delay):
		}
	}
}

// acceptFault, when set, runs before each accept of a look-up's connection, and an error it
// returns is the accept's: tests fail accepts with it as a process at its fd limit sees them.
var acceptFault atomic.Pointer[func() error]

// accept accepts a look-up's connection.
func accept(ln *net.UnixListener) (*net.UnixConn, error) {
	if f := acceptFault.Load(); f != nil {
		if err := (*f)(); err != nil {
			return nil, err
		}
	}
	return ln.AcceptUnix()
}

// acceptRetries says whether an accept failed for want of a resource that may come back (a
// descriptor, kernel memory), not because the listener is closed or broken.
func acceptRetries(err error) bool {
	for _, errno := range []error{unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// take starts answering the look-up whose connection the accept loop just accepted. A peer of
// another uid is refused with 1100 (the namespace is per user, as launchd's is). The request is
// read at once when it is there (it usually is: a look-up sends it as it connects), and answered
// on a goroutine. One that is not there yet is waited for on a goroutine, for requestWait, and
// for maxWaiting connections at once only: beyond that the one that has waited longest is given
// up (refused as a request that never came), so that silent peers cannot pin the serving
// process's descriptors.
func (a *agent) take(conn *net.UnixConn) {
	raw, err := conn.SyscallConn()
	if err != nil {
		_ = conn.Close()
		return
	}
	var uidOK bool
	_ = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		uidOK = err == nil && int(cred.Uid) == os.Getuid()
		if !uidOK {
			_ = emu.RefuseHandoff(int(fd), abi.BOOTSTRAP_NOT_PRIVILEGED)
		}
	})
	if !uidOK {
		_ = conn.Close()
		return
	}
	key, err := readRequest(a.ctx, conn, raw, false)
	if !errors.Is(err, errNoRequestYet) {
		a.answers.Add(1)
		go func() { defer a.answers.Done(); a.answer(conn, raw, key, err) }()
		return
	}
	// The deadline is set before the connection can be given up, which moves it to the past.
	_ = conn.SetReadDeadline(time.Now().Add(requestWait))
	a.waitMu.Lock()
	if len(a.waitq) >= maxWaiting {
		_ = a.waitq[0].SetReadDeadline(time.Unix(1, 0)) // its reader gives up now
		a.waitq = append(a.waitq[:0], a.waitq[1:]...)
	}
	a.waitq = append(a.waitq, conn)
	a.waitMu.Unlock()
	a.answers.Add(1)
	go func() {
		defer a.answers.Done()
		key, err := readRequest(a.ctx, conn, raw, true)
		a.waitMu.Lock()
		if i := slices.Index(a.waitq, conn); i >= 0 {
			a.waitq = slices.Delete(a.waitq, i, i+1)
		}
		a.waitMu.Unlock()
		a.answer(conn, raw, key, err)
	}()
}

// answer gives the look-up on conn, whose request named key (or failed to be read with err), a
// send right to the name it asks for, and closes conn. A request that is not one (readRequest)
// is refused with KERN_INVALID_ARGUMENT; a name this process does not serve (withdrawn since the
// peer followed its link) with 1102.
func (a *agent) answer(conn *net.UnixConn, raw syscall.RawConn, key string, err error) {
	defer conn.Close()
	refuse := func(code int32) { _ = raw.Control(func(fd uintptr) { _ = emu.RefuseHandoff(int(fd), code) }) }
	switch {
	case errors.Is(err, errBadRequest):
		refuse(abi.KERN_INVALID_ARGUMENT)
		return
	case err != nil:
		return // the peer kept silent, or the agent stops
	}
	s := a.e.acquire(a, key)
	if s == nil {
		refuse(abi.BOOTSTRAP_UNKNOWN_SERVICE)
		return
	}
	defer s.busy.Done()
	_ = raw.Control(func(fd uintptr) {
		switch kr := emu.PassSendRight(int(fd), uint32(s.send.Name())); kr {
		case abi.KERN_SUCCESS:
		case abi.KERN_FAILURE:
			// The connection did not take the right: the peer is gone (it gave up, or died)
			// or cannot take it. Nothing more is sent, as launchd sends nothing when its reply
			// fails with MACH_SEND_INVALID_DEST or MACH_SEND_TIMED_OUT: it destroys the reply
			// and goes on (launchd_runtime2 in launchd_runtime.c). A refusal would not reach a
			// gone peer, and to one still there 1102 would say the name is not served, which
			// is false; it sees the connection closed without an answer instead.
		case abi.MACH_SEND_NO_BUFFER, abi.KERN_RESOURCE_SHORTAGE:
			// This process lacks the descriptors to carry the right (the channel made when a
			// right first leaves the process): the name is served, so the look-up is told the
			// emulation's answer for want of resources, as a send would be, not 1102.
			_ = emu.RefuseHandoff(int(fd), kr)
		default:
			// The namespace's right is no send right any more: its port died, and the name
			// goes with it (watch).
			_ = emu.RefuseHandoff(int(fd), abi.BOOTSTRAP_UNKNOWN_SERVICE)
		}
	})
}

// errNoRequestYet is readRequest's answer, when told not to wait, for a request not sent yet.
var errNoRequestYet = errors.New("bootstrap: no look-up request yet")

// readRequest reads a look-up's request (request_linux.go) and returns the key it names:
// errBadRequest for a datagram that is not a request (too long, carrying descriptors, which are
// closed, or malformed) and for a hang-up. When the request is not there yet it returns
// errNoRequestYet, or with wait waits for it: then another error when the peer sent nothing
// before the connection's read deadline (the caller sets it), or the agent stopped.
func readRequest(ctx context.Context, conn *net.UnixConn, raw syscall.RawConn, wait bool) (string, error) {
	buf := make([]byte, maxLookUpRequest+1)
	oob := make([]byte, unix.CmsgSpace(8*4))
	var n, oobn, flags int
	var rerr error
	recv := func(fd uintptr) bool {
		n, oobn, flags, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC)
		return !errors.Is(rerr, unix.EAGAIN)
	}
	// A look-up sends its request as it connects, so it is usually here already: the deadline
	// and the stop's wake-up are armed only when it is not.
	err := raw.Control(func(fd uintptr) { recv(fd) })
	if err == nil && errors.Is(rerr, unix.EAGAIN) {
		if !wait {
			return "", errNoRequestYet
		}
		stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
		err = raw.Read(recv)
		stop()
	}
	if err == nil {
		err = rerr
	}
	if err != nil {
		return "", err
	}
	// An empty datagram and a hang-up read alike: either way there is no request, and the
	// refusal of the first is lost on the second.
	if closeRights(oob[:oobn]) > 0 || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return "", errBadRequest
	}
	return decodeLookUp(buf[:n])
}

// closeRights closes the descriptors an SCM_RIGHTS control message brought, and says how many.
func closeRights(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	n := 0
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		n += len(fds)
	}
	return n
}
