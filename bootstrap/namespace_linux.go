//go:build linux

package bootstrap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/mach"
	"golang.org/x/sys/unix"
)

var ns namespace = &emulated{owned: map[string]*served{}}

// emulated is the daemonless namespace. Per name it keeps two files in the directory:
// <key>.lock, which the owner holds an exclusive flock on for as long as it serves the name, and
// <key>.sock, a listening SOCK_SEQPACKET socket that hands each look-up a new send right. The
// kernel drops the flock when the owner dies, so a killed owner frees its names; its socket file
// then refuses connections until the next owner replaces it.
type emulated struct {
	mu    sync.Mutex
	owned map[string]*served // by key: the names this process serves
}

// served is one name this process serves.
type served struct {
	key, sockPath, lockPath string
	lockFD                  int
	ln                      *net.UnixListener
	send                    *mach.SendRight    // what each look-up receives a copy of
	notify                  *mach.ReceiveRight // receives the dead-name notification of send, or nil
	unwatch                 func()             // cancels the watch of the receive right, or nil
	stop                    context.CancelFunc
	done                    chan struct{} // closed when serving has ended and all is released
	withdrawOnce            sync.Once
}

// Dir returns the directory of the emulated namespace, creating it with mode 0700. It refuses a
// directory that another user owns or that others may write to.
func Dir() (string, error) {
	dir := os.Getenv(EnvDir)
	if dir == "" {
		if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
			dir = filepath.Join(rt, "machport")
		} else {
			dir = filepath.Join(os.TempDir(), "machport-"+strconv.Itoa(os.Getuid()))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("bootstrap: namespace directory: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return "", fmt.Errorf("bootstrap: namespace directory: %w", err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return "", fmt.Errorf("bootstrap: namespace directory %s is not a directory", dir)
	case int(st.Uid) != os.Getuid():
		return "", fmt.Errorf("bootstrap: namespace directory %s belongs to uid %d, not %d", dir, st.Uid, os.Getuid())
	case st.Mode&0o077 != 0:
		return "", fmt.Errorf("bootstrap: namespace directory %s has mode %#o; others must have no access", dir, st.Mode&0o777)
	}
	return dir, nil
}

// paths derives a name's file names from a hash of the name, because a socket path holds only
// 108 bytes and a service name may hold 127 of any UTF-8.
func paths(name string, pid int) (key, sock, lock string, err error) {
	dir, err := Dir()
	if err != nil {
		return "", "", "", err
	}
	sum := sha256.Sum256([]byte(name))
	key = "g-" + hex.EncodeToString(sum[:16])
	if pid != 0 {
		key = "p" + strconv.Itoa(pid) + "-" + hex.EncodeToString(sum[:16])
	}
	return key, filepath.Join(dir, key+".sock"), filepath.Join(dir, key+".lock"), nil
}

// ownerRecord is what the namespace writes in a name's lock file: the name and its owner's pid,
// a line each.
func ownerRecord(name string, pid int) string { return fmt.Sprintf("%s\n%d\n", name, pid) }

// parseOwnerRecord reads a record ownerRecord wrote.
func parseOwnerRecord(b []byte) (name string, pid int, ok bool) {
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 {
		return "", 0, false
	}
	pid, err := strconv.Atoi(lines[1])
	return lines[0], pid, err == nil && pid > 0
}

// Owner returns the pid of the process that serves name (the per-PID service of pid when pid is
// not 0) in the emulated namespace, from the record kept beside the name's lock; known is false
// when there is none, or it names another service (a stale or replaced record). Linux only:
// launchd tells no owner.
func Owner(name string, pid int) (owner int, known bool) {
	_, _, lock, err := paths(name, pid)
	if err != nil {
		return 0, false
	}
	b, err := os.ReadFile(lock)
	if err != nil {
		return 0, false
	}
	recorded, owner, ok := parseOwnerRecord(b)
	return owner, ok && recorded == name
}

// ServedBy lists, sorted, the names process pid serves in the emulated namespace, from the
// records kept beside the names' locks. Linux only.
func ServedBy(pid int) ([]string, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	locks, err := filepath.Glob(filepath.Join(dir, "*.lock"))
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, l := range locks {
		if b, err := os.ReadFile(l); err == nil {
			if name, owner, ok := parseOwnerRecord(b); ok && owner == pid {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

func (e *emulated) register(name string, port *mach.ReceiveRight, perPID bool) (func() error, error) {
	op, pid := "bootstrap_register2", 0
	if perPID {
		pid = os.Getpid()
	}
	// The namespace keeps a send right of its own, as launchd does.
	send, err := port.MakeSend()
	if err != nil {
		return nil, &Error{Op: op, Name: name, PID: pid, Err: atFDLimit(err)}
	}
	withdraw, err := e.publish(op, name, send, perPID)
	if err != nil {
		_ = send.Close()
	}
	return withdraw, err
}

// publish serves name with send, which the namespace owns from then on; on failure send stays
// the caller's. As launchd (job_mig_register2 in launchd-842 src/core.c), it refuses a name this
// process serves already with 1103 and one another process serves with 1100. The returned
// function withdraws the name at once; the name also goes when send's port dies (see start).
func (e *emulated) publish(op, name string, send *mach.SendRight, perPID bool) (func() error, error) {
	pid := 0
	if perPID {
		pid = os.Getpid()
	}
	fail := func(code Code, err error) (func() error, error) {
		if err != nil {
			err = atFDLimit(err)
		}
		return nil, &Error{Op: op, Name: name, PID: pid, Code: code, Err: err}
	}
	key, sockPath, lockPath, err := paths(name, pid)
	if err != nil {
		return fail(0, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.owned[key]; ok {
		return fail(ErrServiceActive, nil)
	}
	lockFD, err := lockNameSoon(lockPath)
	if err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fail(ErrNotPrivileged, errors.New("another process serves this name"))
		}
		return fail(0, err)
	}
	s := &served{key: key, sockPath: sockPath, lockPath: lockPath, lockFD: lockFD, done: make(chan struct{})}
	if err := s.start(name, send, e); err != nil {
		s.send = nil // the caller's again
		s.release()
		return fail(0, err)
	}
	e.owned[key] = s
	ctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	go s.serve(ctx, e)
	return func() error { s.withdraw(e); <-s.done; return nil }, nil
}

// fdsPerName is about how many descriptors a name this process serves holds: its lock file, its
// listening socket, and the send right's channel (both ends, and the emulation's watch on its
// read end), queue counter, epoll fd and eventfd.
const fdsPerName = 8

// atFDLimit says so when a registration failed because the process has as many open files as
// RLIMIT_NOFILE allows (the failure may come as EMFILE, or from the emulation as a resource
// shortage, so one more descriptor is tried), and wraps EMFILE.
func atFDLimit(err error) error {
	atLimit := errors.Is(err, unix.EMFILE)
	if !atLimit {
		fd, derr := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 0)
		if derr == nil {
			unix.Close(fd)
		}
		atLimit = errors.Is(derr, unix.EMFILE)
	}
	if !atLimit {
		return err
	}
	var lim unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	const why = "the process's open-file limit (RLIMIT_NOFILE) of %d is reached; each name this process serves holds about %d descriptors"
	if errors.Is(err, unix.EMFILE) {
		return fmt.Errorf("%w: "+why, err, lim.Cur, fdsPerName)
	}
	// errors.Is(err, syscall.EMFILE) tells the cause, whichever layer ran out.
	return fmt.Errorf("%w: %w: "+why, err, unix.EMFILE, lim.Cur, fdsPerName)
}

// lockNameSoon is lockName for a registrant: a look-up cleaning a dead owner's files holds the
// lock for a moment, which must not look like a live owner, so a busy lock is retried briefly
// before it counts as another process's.
func lockNameSoon(path string) (int, error) {
	for delay := 100 * time.Microsecond; ; delay *= 2 {
		fd, err := lockName(path)
		if !errors.Is(err, unix.EWOULDBLOCK) || delay > 10*time.Millisecond {
			return fd, err
		}
		time.Sleep(delay)
	}
}

// lockName opens and flocks a name's lock file. The lock must be on the file the path names
// now: a previous owner unlinks the file when it withdraws, and a lock won on the unlinked file
// would be worthless, so the inode is compared after locking and the whole step retried.
func lockName(path string) (int, error) {
	for range 8 {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return -1, fmt.Errorf("lock file: %w", err)
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			unix.Close(fd)
			return -1, err
		}
		var held, now unix.Stat_t
		if unix.Fstat(fd, &held) == nil && unix.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return fd, nil
		}
		unix.Close(fd)
	}
	return -1, errors.New("lock file keeps being replaced")
}

// start takes send, the right that look-ups receive copies of, arranges for the name to go
// when the port dies, and replaces any stale socket of a dead owner with a listening one.
//
// launchd learns of a port's death from a dead-name request in its own IPC space. This namespace
// lives in the registrant's space instead, where its reference would outlive the port as a dead
// name and the registrant's own dead-name request on the name (a Remote's, say: one per name)
// would replace its own. So when the receive right is this process's, the name is withdrawn just
// before this process destroys it (emu.WatchReceive); otherwise (a right to another process's
// port, which the libSystem double's bootstrap_register2 may be given) a dead-name request says.
// A killed process's names go with its flocks.
func (s *served) start(name string, send *mach.SendRight, e *emulated) error {
	var err error
	s.send = send
	unwatch, kr := emu.WatchReceive(uint32(send.Name()), func() { s.withdraw(e); <-s.done })
	s.unwatch = unwatch
	if kr != abi.KERN_SUCCESS {
		if s.notify, err = mach.NewPort(mach.PortOptions{}); err != nil {
			return err
		}
		prev, err := s.send.RequestDeadName(s.notify)
		if err != nil {
			return err
		}
		if prev != nil { // a fresh right has no earlier request; release one all the same
			_ = prev.Close()
		}
	}
	record := ownerRecord(name, os.Getpid()) // for people and tools (Owner, ServedBy), not for locking
	_ = unix.Ftruncate(s.lockFD, 0)
	_, _ = unix.Pwrite(s.lockFD, []byte(record), 0)
	if err := os.Remove(s.sockPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.ln, err = net.ListenUnix("unixpacket", &net.UnixAddr{Name: s.sockPath, Net: "unixpacket"})
	if err != nil {
		return err
	}
	s.ln.SetUnlinkOnClose(false) // withdraw unlinks, in its own order
	return nil
}

// serve answers look-ups until the name is withdrawn, and withdraws it when a dead-name
// notification says the port died (see start). An accept that fails for want of descriptors is
// retried: the name stays served.
func (s *served) serve(ctx context.Context, e *emulated) {
	var wg sync.WaitGroup
	if s.notify != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m mach.Message
			err := mach.Receive(ctx, s.notify, &m)
			if err == nil {
				if n, perr := mach.ParseNotification(&m); perr == nil {
					_ = n.CloseDeadName()
				}
				_ = m.Destroy()
				go s.withdraw(e) // the port died: the name goes with it
			}
		}()
	}
	for delay := time.Duration(0); ; {
		conn, err := accept(s.ln)
		if err == nil {
			delay = 0
			s.answer(conn)
			continue
		}
		if errors.Is(err, net.ErrClosed) || !acceptRetries(err) {
			break
		}
		// Linux's accept4 takes the new descriptor before it looks for a connection
		// (__sys_accept4_file in net/socket.c), so in a process at its open-file limit every
		// accept fails, whether a look-up waits or not. The name is still served: wait, as
		// net/http's Server.Serve does after a temporary accept error, and try again.
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		select {
		case <-ctx.Done(): // withdrawn: the next accept says so
		case <-time.After(delay):
		}
	}
	// Serving ends only through withdraw, which closes the listener. An accept that failed for
	// good withdraws the name here: nobody else would close its socket when the name was
	// registered through the libSystem double or checked in, whose owners keep no withdraw
	// function and rely on the port's watch, which release cancels.
	s.withdraw(e)
	s.stop()
	wg.Wait()
	if s.notify != nil {
		mach.Drain(s.notify) // a dead-name notification that came after its receiver stopped
	}
	s.release()
	close(s.done)
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

// answer gives one look-up a send right, or refuses a peer of another uid with 1100 (the
// namespace is per user, as launchd's is).
func (s *served) answer(conn *net.UnixConn) {
	defer conn.Close()
	raw, err := conn.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		switch {
		case err != nil || int(cred.Uid) != os.Getuid():
			_ = emu.RefuseHandoff(int(fd), abi.BOOTSTRAP_NOT_PRIVILEGED)
		case emu.PassSendRight(int(fd), uint32(s.send.Name())) != abi.KERN_SUCCESS:
			_ = emu.RefuseHandoff(int(fd), abi.BOOTSTRAP_UNKNOWN_SERVICE) // the port is dead
		}
	})
}

// withdraw takes the name away: first the socket file, so that new look-ups find nothing, then
// the listener; serve then ends and release removes the lock file and, last, drops the lock.
func (s *served) withdraw(e *emulated) {
	s.withdrawOnce.Do(func() {
		e.mu.Lock()
		if e.owned[s.key] == s {
			delete(e.owned, s.key)
		}
		e.mu.Unlock()
		_ = os.Remove(s.sockPath)
		_ = s.ln.Close()
		s.stop()
	})
}

// release closes what start opened; the lock goes last.
func (s *served) release() {
	if s.unwatch != nil {
		s.unwatch()
	}
	if s.notify != nil {
		mach.Drain(s.notify) // a dead-name notification carries a reference of the dead name
		_ = s.notify.Close()
	}
	if s.send != nil {
		_ = s.send.Close()
	}
	_ = os.Remove(s.lockPath)
	_ = unix.Close(s.lockFD)
}

// checkIn makes name a service of this process and returns its receive right, as launchd's
// job_mig_check_in2 does with flags 0 for a name no job declares (launchd-842 src/core.c;
// crashpad's util/mach/bootstrap_test.cc sees it on real launchd). There are no plists here, so
// no name is declared. The refusals are register's: 1103 for a name this process serves, 1100
// for one another process serves; the sandbox's were checked before (CheckIn's precheck). The
// name goes with its port, as a registered one does.
func (e *emulated) checkIn(name string) (*mach.ReceiveRight, error) {
	const op = "bootstrap_check_in"
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return nil, &Error{Op: op, Name: name, Err: err}
	}
	send, err := port.MakeSend()
	if err == nil {
		if _, err = e.publish(op, name, send, false); err != nil {
			_ = send.Close()
		}
	}
	if err != nil {
		_ = port.Close()
		var be *Error
		if !errors.As(err, &be) {
			err = &Error{Op: op, Name: name, Err: err}
		}
		return nil, err
	}
	return port, nil
}

func (e *emulated) lookUp(ctx context.Context, op, name string, pid int) (*mach.SendRight, error) {
	fail := func(code Code, err error) (*mach.SendRight, error) {
		return nil, &Error{Op: op, Name: name, PID: pid, Code: code, Err: err}
	}
	_, sockPath, lockPath, err := paths(name, pid)
	if err != nil {
		return fail(0, err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unixpacket", sockPath)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return fail(0, ctx.Err())
		case errors.Is(err, unix.ENOENT):
			return fail(ErrUnknownService, nil)
		case errors.Is(err, unix.ECONNREFUSED):
			cleanStale(sockPath, lockPath)
			return fail(ErrUnknownService, nil)
		case errors.Is(err, unix.EACCES):
			return fail(ErrNotPrivileged, err)
		}
		return fail(0, err)
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	raw, err := conn.SyscallConn()
	if err != nil {
		return fail(0, err)
	}
	var credErr error
	_ = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err == nil && int(cred.Uid) != os.Getuid() {
			err = fmt.Errorf("the name's socket is served by uid %d", cred.Uid)
		}
		credErr = err
	})
	if credErr != nil {
		return fail(ErrNotPrivileged, credErr)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	unblock := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer unblock()
	var got uint32
	var code int32
	var rerr error
	err = raw.Read(func(fd uintptr) bool {
		got, code, rerr = emu.ReceiveHandoff(int(fd), false)
		return !errors.Is(rerr, unix.EAGAIN)
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		<-ctx.Done() // the read deadline is the context's: its error is the one to give
	}
	switch {
	case ctx.Err() != nil:
		if got != 0 {
			_ = mach.AdoptSend(mach.Name(got)).Close()
		}
		return fail(0, ctx.Err())
	case err != nil:
		return fail(0, err)
	case errors.Is(rerr, io.EOF):
		return fail(ErrUnknownService, errors.New("the owner closed the connection without answering"))
	case errors.Is(rerr, unix.ECONNRESET):
		// The owner's listening socket closed with this connection still queued on it: the
		// owner died (or withdrew the name) before it accepted (Linux's unix_release_sock
		// resets the connections a listener never accepted).
		return fail(ErrUnknownService, errors.New("the owner went away before answering"))
	case rerr != nil:
		return fail(0, rerr)
	case code == abi.KERN_INVALID_NAME:
		// ReceiveHandoff's answer for a send right whose port died on the way, which Mach
		// would copy out as MACH_PORT_DEAD: the owner is gone.
		return fail(ErrUnknownService, errServerGone)
	case code != 0:
		return nil, opError(op, name, pid, code)
	case got == 0:
		return nil, opError(op, name, pid, abi.KERN_INVALID_ARGUMENT)
	}
	return mach.AdoptSend(mach.Name(got)), nil
}

// cleanStale removes the files of a name whose owner died: the socket refused the connection,
// and the lock, taken here without waiting, proves nobody serves the name now.
func cleanStale(sockPath, lockPath string) {
	fd, err := lockName(lockPath)
	if err != nil {
		return
	}
	_ = os.Remove(sockPath)
	_ = os.Remove(lockPath)
	_ = unix.Close(fd)
}
