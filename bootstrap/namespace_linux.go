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
	"sync"
	"sync/atomic"
	"time"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/mach"
	"golang.org/x/sys/unix"
)

var ns namespace = &emulated{owned: map[string]*served{}, agents: map[string]*agent{}}

// emulated is the daemonless namespace. A process that serves names runs one agent per
// namespace directory it serves names in (agent_linux.go; $MACHPORT_BOOTSTRAP_DIR may change
// between registrations): a listening socket that answers the look-ups of all its names, and a lock
// whose holder owns their records. Per name the directory holds only a record and a link to the
// agent's socket (claim_linux.go), so a name costs no descriptor of its own. The kernel drops the
// agent's lock when the process dies, so a killed owner frees its names; their links then lead
// to a socket that refuses connections, and the next look-up or owner cleans them up.
type emulated struct {
	reg    sync.Mutex         // held by a registration, which may wait for the directory's lock
	mu     sync.Mutex         // never held while waiting for the directory's lock
	owned  map[string]*served // by ownedKey: the names this process serves
	agents map[string]*agent  // by directory: the agents new names there join
}

// ownedKey is where e.owned keeps the name of key in directory dir.
func ownedKey(dir, key string) string { return dir + "\x00" + key }

// served is one name this process serves.
type served struct {
	key          string // ownedKey: its directory and key
	paths        namePaths
	agent        *agent
	send         *mach.SendRight // what each look-up receives a copy of
	unwatch      func()          // cancels the watch of the receive right, or nil
	dead         *deadNames      // watches send for its port's death instead, or nil
	busy         sync.WaitGroup  // look-ups passing send on
	withdrawOnce sync.Once
}

// namePaths are where a name lives in the directory.
type namePaths struct {
	dir    string
	key    string
	sock   string // the link to the owner agent's socket
	record string // the owner's record
	// legacyLock is the per-name lock of the earlier format, whose leftovers are cleaned up.
	legacyLock string
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
func paths(name string, pid int) (namePaths, error) {
	dir, err := Dir()
	if err != nil {
		return namePaths{}, err
	}
	sum := sha256.Sum256([]byte(name))
	key := "g-" + hex.EncodeToString(sum[:keyHashLen/2])
	if pid != 0 {
		key = "p" + strconv.Itoa(pid) + "-" + hex.EncodeToString(sum[:keyHashLen/2])
	}
	base := filepath.Join(dir, key)
	return namePaths{dir: dir, key: key, sock: base + ".sock", record: base + ".owner", legacyLock: base + ".lock"}, nil
}

// Owner returns the pid of the process that serves name (the per-PID service of pid when pid is
// not 0) in the emulated namespace, from the name's record; known is false when there is none,
// it names another service (a replaced record), or its owner is dead (a killed owner's record
// stays until the name is next claimed or looked up). A live owner of the earlier format (a
// process built before the agent format, whose held lock Register counts as serving the name)
// is found from the record in its lock. Linux only: launchd tells no owner.
func Owner(name string, pid int) (owner int, known bool) {
	p, err := paths(name, pid)
	if err != nil {
		return 0, false
	}
	if b, err := os.ReadFile(p.record); err == nil {
		recorded, owner, agent, ok := parseOwnerRecord(b)
		if ok && recorded == name && agentAlive(p.dir, agent) {
			return owner, true
		}
	}
	recorded, owner, ok := legacyOwner(p.legacyLock)
	return owner, ok && recorded == name
}

// ServedBy lists, sorted, the names process pid serves in the emulated namespace, from the
// names' records (those of a dead owner left out), and from the held locks of the earlier
// format. Linux only.
func ServedBy(pid int) ([]string, error) {
	dir, err := Dir()
	if err != nil {
		return nil, err
	}
	records, err := filepath.Glob(filepath.Join(dir, "*.owner"))
	if err != nil {
		return nil, err
	}
	names := []string{}
	alive := map[string]bool{} // by agent: checked once each
	for _, r := range records {
		b, err := os.ReadFile(r)
		if err != nil {
			continue
		}
		name, owner, agent, ok := parseOwnerRecord(b)
		if !ok || owner != pid {
			continue
		}
		live, checked := alive[agent]
		if !checked {
			live = agentAlive(dir, agent)
			alive[agent] = live
		}
		if live {
			names = append(names, name)
		}
	}
	locks, err := filepath.Glob(filepath.Join(dir, "*.lock"))
	if err != nil {
		return nil, err
	}
	for _, l := range locks {
		if filepath.Base(l) == dirLockFile {
			continue
		}
		if name, owner, ok := legacyOwner(l); ok && owner == pid {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
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
// function withdraws the name at once; the name also goes when send's port dies (see watch).
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
	p, err := paths(name, pid)
	if err != nil {
		return fail(0, err)
	}
	// A name whose link look-ups cannot reach is refused here, with the cause.
	_, done, err := sockAddr(p.sock)
	if err != nil {
		return fail(0, err)
	}
	done()
	// Registrations go one at a time, and wait for the directory's lock (startAgent, claim)
	// without e.mu, which the agent's answers need: a registration waiting for another
	// process does not hold up the look-ups of the names this process serves.
	e.reg.Lock()
	defer e.reg.Unlock()
	e.mu.Lock()
	if _, ok := e.owned[ownedKey(p.dir, p.key)]; ok {
		e.mu.Unlock()
		return fail(ErrServiceActive, nil)
	}
	a := e.agents[p.dir]
	if a != nil {
		a.names++ // the agent stays while this claim runs
	}
	e.mu.Unlock()
	if a != nil {
		// A socket or lock file removed behind the agent's back is made again here at the
		// latest (mend; its watch usually did it already).
		a.mend()
	}
	if a == nil {
		if a, err = startAgent(e, p.dir); err != nil {
			return fail(0, err)
		}
		e.mu.Lock()
		if !a.failed { // its accept loop may have failed already
			e.agents[p.dir] = a
		}
		a.names++
		e.mu.Unlock()
	}
	s := &served{key: ownedKey(p.dir, p.key), paths: p, agent: a, send: send}
	taken, err := claim(p, name, a.id)
	e.mu.Lock()
	// An agent whose socket failed meanwhile (withdrawAll) withdrew its other names: this one
	// is registered, and goes at once too.
	failed := a.failed
	if err == nil && !taken && !failed {
		if err = e.watch(s); err != nil {
			unclaim(p)
		}
	}
	if err != nil || taken {
		a.names--
		idle := e.detachIfIdle(a)
		e.mu.Unlock()
		if idle != nil {
			idle.stop()
		}
		if taken {
			return fail(ErrNotPrivileged, errors.New("another process serves this name"))
		}
		return fail(0, err)
	}
	e.owned[s.key] = s
	e.mu.Unlock()
	if failed {
		e.withdraw(s)
	}
	return func() error { e.withdraw(s); return nil }, nil
}

// watch arranges for the name to go when send's port dies. The caller holds e.mu.
//
// launchd learns of a port's death from a dead-name request in its own IPC space. This namespace
// lives in the registrant's space instead, where its reference would outlive the port as a dead
// name and the registrant's own dead-name request on the name (a Remote's, say: one per name)
// would replace its own. So when the receive right is this process's, the name is withdrawn just
// before this process destroys it (emu.WatchReceive); otherwise (a right to another process's
// port, which the libSystem double's bootstrap_register2 may be given) a dead-name request on
// the agent's one notification port says (deadNames). A killed process's names go with its
// agent's lock.
func (e *emulated) watch(s *served) error {
	unwatch, kr := emu.WatchReceive(uint32(s.send.Name()), func() { e.withdraw(s) })
	if kr == abi.KERN_SUCCESS {
		s.unwatch = unwatch
		return nil
	}
	a := s.agent
	if a.dead == nil {
		d, err := newDeadNames(e)
		if err != nil {
			return err
		}
		a.dead = d
	}
	if err := a.dead.watch(s); err != nil {
		return err
	}
	s.dead = a.dead
	return nil
}

// detachIfIdle takes agent a away when no name leads to it any more, and returns it for the
// caller to stop once it has let go of e.mu (stopping waits for look-ups being answered, which
// take e.mu). The caller holds e.mu.
func (e *emulated) detachIfIdle(a *agent) *agent {
	if a.names > 0 {
		return nil
	}
	if e.agents[a.dir] == a {
		delete(e.agents, a.dir)
	}
	return a
}

// acquire returns the name with key that this process serves through agent a, or nil, holding
// it (s.busy) so that it is not released while a look-up passes its right on.
func (e *emulated) acquire(a *agent, key string) *served {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.owned[ownedKey(a.dir, key)]
	if s == nil || s.agent != a {
		return nil
	}
	s.busy.Add(1)
	return s
}

// withdraw takes the name away: first the link, so that new look-ups find nothing (one that
// followed it already is refused), then the record; then it releases the right once no look-up
// is passing it on, and stops the agent if this was its last name. It returns once all that is
// done, whoever called it first.
func (e *emulated) withdraw(s *served) {
	s.withdrawOnce.Do(func() {
		e.mu.Lock()
		if e.owned[s.key] == s {
			delete(e.owned, s.key)
		}
		s.agent.names--
		idle := e.detachIfIdle(s.agent)
		if s.dead != nil {
			s.dead.forget(s)
		}
		// Under e.mu, so that registering the name again here cannot meet this record.
		unclaim(s.paths)
		e.mu.Unlock()
		s.busy.Wait()
		if s.unwatch != nil {
			s.unwatch()
		}
		_ = s.send.Close()
		if idle != nil {
			idle.stop()
		}
	})
}

// withdrawAll withdraws the names of agent a, whose socket cannot accept any more, and stops it.
func (e *emulated) withdrawAll(a *agent) {
	e.mu.Lock()
	a.failed = true
	if e.agents[a.dir] == a {
		delete(e.agents, a.dir) // new names start a new agent
	}
	var gone []*served
	for _, s := range e.owned {
		if s.agent == a {
			gone = append(gone, s)
		}
	}
	e.mu.Unlock()
	for _, s := range gone {
		e.withdraw(s)
	}
	a.stop()
}

// A name this process serves holds no descriptor of its own: the agent holds agentFDs for all
// of them, and the send right the namespace keeps of a name's port shares the port's channel
// with the registrant's own send rights (it is a user reference of the registrant's name).

// fdsPerChannel is about how many descriptors the emulation may take at once to make a send
// right's channel (both ends, the port's epoll fd and eventfd, its queue counter, and a spare).
const fdsPerChannel = 6

// atFDLimit says so when a registration failed because the process has as many open files as
// RLIMIT_NOFILE allows, or nearly: the failure may come as EMFILE, or from the emulation as a
// resource shortage when a send right's channel, which takes several descriptors at once, did
// not fit, so a few more descriptors are tried (fdsPerChannel), and wraps EMFILE.
func atFDLimit(err error) error {
	atLimit := errors.Is(err, unix.EMFILE)
	if !atLimit {
		var fds []int
		for range fdsPerChannel {
			fd, derr := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 0)
			if derr != nil {
				atLimit = errors.Is(derr, unix.EMFILE)
				break
			}
			fds = append(fds, fd)
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	if !atLimit {
		return err
	}
	var lim unix.Rlimit
	_ = unix.Getrlimit(unix.RLIMIT_NOFILE, &lim)
	const why = "the process's open-file limit (RLIMIT_NOFILE) of %d is reached; a name this process serves holds no descriptor of its own " +
		"(the namespace holds %d for all its names): the descriptors open are its ports' channels and its other files"
	if errors.Is(err, unix.EMFILE) {
		return fmt.Errorf("%w: "+why, err, lim.Cur, agentFDs)
	}
	// errors.Is(err, syscall.EMFILE) tells the cause, whichever layer ran out.
	return fmt.Errorf("%w: %w: "+why, err, unix.EMFILE, lim.Cur, agentFDs)
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

// lookUp looks name up, and tries again when the owner's agent answered that it gave up waiting
// for the request (KERN_OPERATION_TIMED_OUT): it does so for the connection that has waited
// longest once maxWaiting connections wait for theirs (silent peers, or a crowd of look-ups on
// a loaded machine caught between their connect and their request: 64 requester processes
// starting at once met 1102 before). The next try's request follows its connect at once, and
// is answered. Tries are bounded, so that an owner that keeps answering so ends the look-up.
func (e *emulated) lookUp(ctx context.Context, op, name string, pid int) (*mach.SendRight, error) {
	wait := time.Millisecond
	for try := 1; ; try++ {
		s, err := e.lookUpOnce(ctx, op, name, pid)
		if try == maxLookUpTries || !errors.Is(err, mach.KernOperationTimedOut) || ctx.Err() != nil {
			return s, err
		}
		if !pause(ctx, wait) {
			return nil, err
		}
		wait = min(2*wait, maxQueueFullWait)
	}
}

// pause waits for d, or until ctx ends (false).
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// maxLookUpTries bounds the tries of a look-up whose owner keeps giving up on its request.
const maxLookUpTries = 8

func (e *emulated) lookUpOnce(ctx context.Context, op, name string, pid int) (*mach.SendRight, error) {
	fail := func(code Code, err error) (*mach.SendRight, error) {
		return nil, &Error{Op: op, Name: name, PID: pid, Code: code, Err: err}
	}
	p, err := paths(name, pid)
	if err != nil {
		return fail(0, err)
	}
	addr, done, err := sockAddr(p.sock)
	if err != nil {
		return fail(0, err)
	}
	c, err := dialOwner(ctx, addr)
	done()
	if err != nil {
		switch {
		case ctx.Err() != nil && errors.Is(err, unix.EAGAIN):
			return fail(0, fmt.Errorf("%w: the owner's listen queue stayed full", ctx.Err()))
		case ctx.Err() != nil:
			return fail(0, ctx.Err())
		case errors.Is(err, unix.ENOENT):
			// A link to a dead agent's socket, which is gone; or to a live one's whose file
			// something else removed, whose entries stay (agentAlive finds it alive) while it
			// binds the socket again (rebind).
			if _, lerr := os.Lstat(p.sock); lerr == nil && cleanStale(ctx, p) {
				return fail(ErrUnknownService, errOwnerSocketGone)
			}
			return fail(ErrUnknownService, nil)
		case errors.Is(err, unix.ECONNREFUSED):
			cleanStale(ctx, p) // a link to a dead agent's socket, or an earlier-format socket
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
	if f := lookUpConnectedHook.Load(); f != nil {
		(*f)()
	}
	// The socket is the owner's agent, which serves all its names: say which one.
	var werr error
	_ = raw.Control(func(fd uintptr) {
		werr = unix.Sendmsg(int(fd), encodeLookUp(p.key), nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
	})
	// A request that cannot be sent because the owner closed its end may still have an answer
	// waiting (a peer that answered without reading); the read below finds it, or the hang-up.
	refused := errors.Is(werr, unix.EPIPE) || errors.Is(werr, unix.ECONNRESET)
	if werr != nil && !refused {
		return fail(0, werr)
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
		if errors.Is(rerr, unix.ECONNRESET) {
			// The owner closed its end with this request unread, which Linux reports as a
			// reset (unix_release_sock) ahead of an answer queued before it
			// (__skb_try_recv_datagram gives sock_error first, and clears it): read again
			// for that answer. Without one it is the reset, below.
			refused = true
			got, code, rerr = emu.ReceiveHandoff(int(fd), false)
		}
		if refused && errors.Is(rerr, io.EOF) {
			rerr = unix.ECONNRESET
		}
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
		// resets the connections a listener never accepted); or it accepted and closed the
		// connection without reading the request or answering.
		return fail(ErrUnknownService, errOwnerWentAway)
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

// lookUpConnectedHook, when set, runs in each look-up between its connect and its request:
// tests hold a request back with it.
var lookUpConnectedHook atomic.Pointer[func()]

// queueFullHook, when set, runs each time a look-up finds the owner's listen queue full: tests
// learn from it that a look-up waits there.
var queueFullHook atomic.Pointer[func()]

// maxQueueFullWait is the longest pause between two connects of a look-up that finds the
// owner's listen queue full.
const maxQueueFullWait = 50 * time.Millisecond

// dialOwner connects to the owner's socket at addr. All the names of a process share its agent's
// listen queue (somaxconn connections), so peers that connect to one name faster than the agent
// accepts (a flood of silent connections, or a stalled owner) could fill it, and a connect to a
// full queue fails at once with EAGAIN on a non-blocking socket (unix_stream_connect in
// net/unix/af_unix.c; Go's sockets are all non-blocking): a look-up of another name would fail
// where it should wait its turn. So it waits for room until ctx ends, as a blocking connect
// would (and as a look-up waits for room in launchd's queue): the agent accepts the queue at
// once, and past maxWaiting silent connections gives up the oldest, so the look-up is answered
// once the flood's queued connections are accepted.
func dialOwner(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	for wait := time.Millisecond; ; wait = min(2*wait, maxQueueFullWait) {
		c, err := d.DialContext(ctx, "unixpacket", addr)
		if !errors.Is(err, unix.EAGAIN) {
			return c, err
		}
		if f := queueFullHook.Load(); f != nil {
			(*f)()
		}
		if !pause(ctx, wait) {
			return nil, err
		}
	}
}

// errOwnerSocketGone explains a 1102 for a name whose owner lives but whose socket file is
// missing: something else removed it, and the owner binds it again (agent.rebind).
var errOwnerSocketGone = errors.New("the owner lives, but its socket file was removed; it binds it again shortly")

// errOwnerWentAway explains a 1102 for a look-up whose connection the owner reset.
var errOwnerWentAway = errors.New("the owner went away before answering")
