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
	lockFD   int    // the held lock; under lnMu once serve runs
	lockID   fileID // the file lockFD is; under lnMu
	lnMu     sync.Mutex
	ln       *net.UnixListener // the listener serve accepts on; under lnMu
	next     *net.UnixListener // one bound again at sockPath, which serve takes up (rebind); under lnMu
	sockID   fileID            // the socket file the newest listener made; under lnMu
	stopping bool              // stop has begun: nothing is bound again; under lnMu
	watch    *sockWatch        // notices the removal of the socket's or the lock's file
	ctx      context.Context
	cancel   context.CancelFunc
	accepted chan struct{} // closed when the accept loop has ended
	young    chan struct{} // closed when keepYoung has ended
	waitMu   sync.Mutex
	waitq    []*net.UnixConn // connections whose request is awaited, oldest first (maxWaiting)
	answers  sync.WaitGroup  // look-ups being answered
	stopOnce sync.Once
	names    int        // how many names lead here, and registrations under way; under e.mu
	failed   bool       // its socket accepts no more (withdrawAll); under e.mu
	dead     *deadNames // the dead-name notifications of rights to other processes' ports; under e.mu
}

// agentFDs is how many descriptors the agent holds: its lock, its listening socket and the
// inotify instance that watches their files (sockWatch).
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
	// Tidy the directory unless the agent starts (every failure returns a nil agent). Not by
	// a.ln: serve, started below, writes it when it takes up a listener bound again (takeOver),
	// and this read raced with that write.
	defer func() { l.unlock(a == nil) }()
	if err := os.Mkdir(filepath.Join(dir, agentsDir), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("agents directory: %w", err)
	}
	sweepDeadAgents(dir)
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	a = &agent{e: e, dir: dir, id: fmt.Sprintf("a-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:])),
		accepted: make(chan struct{}), young: make(chan struct{})}
	a.sockPath, a.lockPath = agentPaths(dir, a.id)
	a.lockFD, a.lockID, err = makeLock(a.lockPath)
	if err != nil {
		return nil, err
	}
	ln, id, err := listenAt(a.sockPath)
	if err != nil {
		a.removeLock()
		return nil, err
	}
	a.ln, a.sockID = ln, id
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.lnMu.Lock() // the watch's first mend waits for a.watch
	a.watch = watchSocket(a)
	a.lnMu.Unlock()
	go a.serve()
	go a.keepYoung()
	return a, nil
}

// keepYoungEvery is how often an agent touches its files and its names' entries (touch). It is
// well inside the ages systemd-tmpfiles cleans by: 10 days for /tmp in the default tmp.conf, and
// tmpfiles-clean.timer runs once a day (tmpfiles.d(5), "Age").
const keepYoungEvery = time.Hour

// keepYoung touches the agent's files every keepYoungEvery until the agent stops.
func (a *agent) keepYoung() {
	defer close(a.young)
	t := time.NewTicker(keepYoungEvery)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
			a.touch()
		}
	}
}

// touch sets the access and modification times of the agent's socket and lock, and of the
// records, links and guards of the names it serves, to now. systemd-tmpfiles removes an entry of
// a directory it cleans (the namespace's, in /tmp, when XDG_RUNTIME_DIR is unset) once its atime,
// mtime and ctime are all older than the age (tmpfiles.d(5), "Age"; it leaves sockets in use
// alone). The namespace writes them once, when the agent starts or the name is claimed,
// and a look-up reads a name's link only, with relatime's once a day at most: a name served and
// little looked up for 10 days would lose its record and link (it would be free to anyone,
// and look-ups would find nothing), and the agent its lock (which it makes again: relock).
// A touch keeps them young; it changes no content, so nobody reads it as a change of owner.
func (a *agent) touch() {
	var paths []string
	a.lnMu.Lock()
	if !a.stopping {
		paths = append(paths, a.sockPath, a.lockPath)
	}
	a.lnMu.Unlock()
	a.e.mu.Lock()
	for _, s := range a.e.owned {
		if s.agent == a {
			paths = append(paths, s.paths.record, s.paths.sock, s.paths.legacyLock)
		}
	}
	a.e.mu.Unlock()
	now := unix.NsecToTimespec(time.Now().UnixNano())
	for _, p := range paths {
		// The link and the guard are symbolic links: their own times, not their targets'.
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{now, now}, unix.AT_SYMLINK_NOFOLLOW)
	}
}

// fileID tells one file from another: its device and inode.
type fileID struct{ dev, ino uint64 }

// listenAt makes a listening socket at path, replacing whatever file is there, and says which
// file it made. The socket is bound and listening at a path of its own (path.new: the agent's
// alone, as its id is random) before it is renamed to path, so that path never names a socket
// nobody listens on while the agent lives: a connect refused there (ECONNREFUSED between bind(2)
// and listen(2)) would read as a dead agent (agentAlive). rename(2) keeps the socket's inode,
// which connect(2) finds the socket by, and replaces the old file at once: the path is never
// missing either.
func listenAt(path string) (*net.UnixListener, fileID, error) {
	tmp := path + tmpSuffix
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fileID{}, err
	}
	addr, done, err := sockAddr(tmp)
	if err != nil {
		return nil, fileID{}, err
	}
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: addr, Net: "unixpacket"})
	done()
	if err != nil {
		return nil, fileID{}, err
	}
	ln.SetUnlinkOnClose(false) // stop unlinks, in its own order
	id, _ := statID(tmp)       // gone already: the watch, or the next registration, binds it again
	if err := os.Rename(tmp, path); err != nil {
		_ = ln.Close()
		_ = os.Remove(tmp)
		return nil, fileID{}, err
	}
	return ln, id, nil
}

// tmpSuffix marks the file an agent makes its socket or lock in before renaming it into place.
const tmpSuffix = ".new"

// makeLock makes the agent's lock at path, replacing whatever file is there, and returns it held,
// and which file it is. It is flocked at a path of its own (path.new) before it is renamed to
// path, so that path never names a lock nobody holds while the agent lives: whoever finds the
// lock at path free knows the agent is dead (agentAlive).
func makeLock(path string) (int, fileID, error) {
	tmp := path + tmpSuffix
	_ = os.Remove(tmp) // a leftover of this agent's own
	fd, err := unix.Open(tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return -1, fileID{}, fmt.Errorf("agent lock: %w", err)
	}
	var st unix.Stat_t
	err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if err == nil {
		_, _ = unix.Write(fd, fmt.Appendf(nil, "%d\n", os.Getpid())) // for people
		err = unix.Fstat(fd, &st)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		unix.Close(fd)
		return -1, fileID{}, fmt.Errorf("agent lock: %w", err)
	}
	return fd, fileID{dev: st.Dev, ino: st.Ino}, nil
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
// find nothing (they say so, and leave its entries alone: agentAlive finds it alive). The agent binds again
// rather than look-ups routing round the missing file because a look-up can reach the listener
// only through a path, and a new file at the same path mends every link at once, for nothing on
// the look-up's path (one connect through the link, as before). The old listener's queue is taken
// up by serve (takeOver), so no look-up that reached it before the removal is lost. It runs at
// each registration of another name (a cheap lstat) and when the watch (sockWatch) says.
func (a *agent) rebind() error {
	a.lnMu.Lock()
	defer a.lnMu.Unlock()
	if gone, err := a.replaced(a.sockPath, a.sockID); !gone || err != nil {
		return err
	}
	// Whatever stands at the path now is not this agent's socket, and the path is this agent's
	// alone (its id is random): the new socket replaces it.
	ln, id, err := listenAt(a.sockPath)
	if err != nil {
		return fmt.Errorf("agent socket bound again: %w", err)
	}
	if a.next != nil { // bound again already, and removed again before serve took it up
		_ = a.next.Close()
	}
	a.next, a.sockID = ln, id
	a.watch.add(watchSock, a.sockPath)
	// serve's accept returns at once on a past deadline and takes up the new listener.
	return a.ln.SetDeadline(time.Unix(1, 0))
}

// replaced reports whether the file at path is no longer have, the one the agent made there,
// and makes the agents directory again in case it went too. Called with lnMu held; a stopping
// agent makes nothing again.
func (a *agent) replaced(path string, have fileID) (bool, error) {
	if a.stopping {
		return false, nil
	}
	if id, err := statID(path); err == nil && id == have {
		return false, nil
	}
	if err := os.Mkdir(filepath.Join(a.dir, agentsDir), 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return true, fmt.Errorf("agents directory: %w", err)
	}
	return true, nil
}

// mend makes again what something else removed of the agent's files: its socket (rebind) and
// its lock (relock).
func (a *agent) mend() {
	_ = a.rebind()
	_ = a.relock()
}

// relock makes the agent's lock again at its path when the file there is no longer the one it
// holds: something else removed it. systemd-tmpfiles removes plain files in /tmp whose atime,
// mtime and ctime are all older than the directory's age (10 days for /tmp in the default
// tmp.conf; tmpfiles.d(5), "Age"), and the lock is written once, when the agent starts; a user's
// rm does it too. The agent's flock stays on the removed file, which nobody can reach any more,
// so until the lock is back at its path its owner is judged alive by its socket instead, and
// by its open descriptor of the lock (agentAlive): nobody takes its names meanwhile. The new
// lock is flocked before it is renamed into place (makeLock), and the old one is let go only
// then, so that the agent is never without a held lock at the path once it is back.
func (a *agent) relock() error {
	a.lnMu.Lock()
	defer a.lnMu.Unlock()
	if gone, err := a.replaced(a.lockPath, a.lockID); !gone || err != nil {
		return err
	}
	fd, id, err := makeLock(a.lockPath)
	if err != nil {
		return err
	}
	unix.Close(a.lockFD)
	a.lockFD, a.lockID = fd, id
	a.watch.add(watchLock, a.lockPath)
	return nil
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

// sockWatch tells the agent when its socket's or its lock's file loses a link or moves
// (inotify's IN_ATTRIB comes with unlink(2), as the link count drops: fsnotify_link_count in
// vfs_unlink, fs/namei.c), so that it makes it again at once (mend). It watches those two files,
// so removals of other agents' files wake nobody. Without inotify (a user has 128 instances by
// default, shared by every program of the user) it checks the files every pollSocketEvery
// instead: two lstats, no descriptor.
type sockWatch struct {
	f    *os.File      // the inotify instance, or nil when the files are polled
	wd   [2]int        // the watches of the current socket and lock files; under the agent's lnMu
	quit chan struct{} // closed by stop when the files are polled
	done chan struct{}
}

// The files an agent watches, indexes of sockWatch.wd.
const (
	watchSock = iota
	watchLock
)

// pollSocketEvery is how often an agent without inotify checks its socket's and lock's files.
const pollSocketEvery = time.Second

// noInotify, when set, makes agents poll their socket's file as without inotify (tests).
var noInotify atomic.Bool

// watchSocket starts the watch of a's socket.
func watchSocket(a *agent) *sockWatch {
	w := &sockWatch{wd: [2]int{-1, -1}, quit: make(chan struct{}), done: make(chan struct{})}
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
					a.mend()
				}
			}
		}()
		return w
	}
	w.f = os.NewFile(uintptr(fd), "inotify")
	w.add(watchSock, a.sockPath)
	w.add(watchLock, a.lockPath)
	go func() {
		defer close(w.done)
		buf := make([]byte, 4096)
		for {
			if _, err := w.f.Read(buf); err != nil {
				return // stop closed it
			}
			// Any event (the files' own only, or an overflow) is checked the same way.
			a.mend()
		}
	}()
	return w
}

// add watches the file at path as the agent's socket or lock (which) instead of the one watched
// as it before. A file gone already is found by the next check. The caller holds the agent's
// lnMu, or is watchSocket.
func (w *sockWatch) add(which int, path string) {
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
		if old := w.wd[which]; old >= 0 && old != wd && old != w.wd[1-which] {
			_, _ = unix.InotifyRmWatch(int(fd), uint32(old))
		}
		w.wd[which] = wd
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
		<-a.young
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
	case errors.Is(err, os.ErrDeadlineExceeded) && a.ctx.Err() == nil:
		// Given up (take: maxWaiting), or its request did not come within requestWait. A
		// silent peer reads nothing; a look-up whose request came late learns to try again,
		// where a bare close would read as an owner gone (1102).
		refuse(abi.KERN_OPERATION_TIMED_OUT)
		return
	case err != nil:
		return // the peer hung up, or the agent stops
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
