//go:build linux

package notify

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/mach"
)

// The emulated notify center: notifyd's semantics for every process of a user, without a daemon,
// next to the emulated bootstrap namespace (in its directory's "notify" folder):
//
//   - Each process that has Mach-port registrations binds one datagram socket there
//     ("agents/a-PID-RAND")
//     and a goroutine that reads it: the process's agent. Its file exists while the process has
//     such a registration; a process that ends leaves a file nobody binds, which the next post
//     finds refused and removes.
//   - A post is one datagram (wire.go) sent to every agent, its own included (waiting, as a post
//     to notifyd does, while an agent's socket is full: sender);
//     the agent sends each of its registrations for the name an empty Mach message, msgh_id the
//     token, with a zero timeout, so a full port queue drops it as notifyd's
//     MACH_SEND_TIMEOUT does (Libnotify libnotify.c, _internal_send_port).
//   - Each name has a state file ("s-" and a hash of the name): its 64-bit state and a post
//     generation, under flock. notify_check compares a token's last seen generation with the
//     file's, as libnotify compares a shared-memory slot that notifyd bumps.
//   - An agent drops any datagram that is not exactly a post, that comes from another user, or
//     that was truncated, and closes every descriptor it carried.
//
// Differences from notifyd: the state outlives the name's last registration (the file stays in
// the user's directory; notifyd forgets a name with its last client); names are at most
// MaxNameLen bytes.
type emuCenter struct {
	dirOnce sync.Once
	dir     string
	dirErr  error

	sendOnce sync.Once
	sendFD   int
	sendErr  error

	mu    sync.Mutex
	next  int32
	regs  map[int32]*emuReg
	ports map[uint32]*emuPort // the ports this center made: notifyd's port_table
	agent *agent
	stuck map[string]bool // agents whose socket stayed full for sendTimeout (isStuck)

	garbage   atomic.Uint64 // datagrams dropped as not a post, or not from this user
	queueFull atomic.Uint64 // Mach messages dropped: the port's queue was full
	sockFull  atomic.Uint64 // posts dropped: an agent's socket was full
}

type emuReg struct {
	name      string
	port      uint32 // where deliveries go; 0 for none (a check token, or a foreign port reused)
	suspended bool
	pending   bool   // posted while suspended
	fresh     bool   // notify_check has not been called yet: its first call says true
	seen      uint64 // the name's post generation at the last notify_check
	dropped   uint64 // messages dropped because the port's queue was full
	handled   uint64 // posts the agent handled for it (for the tests)
}

type emuPort struct {
	send *mach.SendRight // the center's send right (notifyd's copy)
	refs int
}

// agentsDir is the folder of the agents' sockets, inside the center's directory.
const agentsDir = "agents"

// qlimit is the queue limit of the ports notifyd makes (notifyd/notify_proc.c,
// __notify_server_register_mach_port_3: MPO_QLIMIT with mpl_qlimit 16).
const qlimit = 16

var emulated = &emuCenter{regs: map[int32]*emuReg{}, ports: map[uint32]*emuPort{}}

var sys center = emulated

// The seam for machport's own tests: when a test binary calls libsystemdouble.UseDarwinLogic,
// this package switches to libnotify's Darwin logic (notify_libsystem.go) over the double, whose
// notify_* calls the emulated center serves, in the role notifyd plays on macOS.
func init() {
	libsystemdouble.OnUse(func() {
		libsystemdouble.SetNotifyCenter(emulated)
		sys = libnotify{load: func() error { return nil }}
	})
}

func (e *emuCenter) Ready() error {
	_, err := e.directory()
	return err
}

func (e *emuCenter) directory() (string, error) {
	e.dirOnce.Do(func() {
		base, err := bootstrap.Dir()
		if err != nil {
			e.dirErr = err
			return
		}
		e.dir = filepath.Join(base, "notify")
		for _, d := range []string{e.dir, filepath.Join(e.dir, agentsDir)} {
			if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				e.dirErr = fmt.Errorf("notify: directory: %w", err)
				return
			}
		}
	})
	return e.dir, e.dirErr
}

// Post bumps the name's generation (if anyone registered it) and sends the post to every agent.
func (e *emuCenter) Post(name string) uint32 {
	if len(name) > MaxNameLen {
		return uint32(StatusInvalidName)
	}
	dir, err := e.directory()
	if err != nil {
		return uint32(StatusFailed)
	}
	_ = updateState(statePath(dir, name), false, func(v *[2]uint64) { v[1]++ })
	fd, err := e.sender()
	if err != nil {
		return uint32(StatusFailed)
	}
	// The agents have a folder of their own, so that listing them does not grow with the names.
	agents := filepath.Join(dir, agentsDir)
	entries, err := os.ReadDir(agents)
	if err != nil {
		return uint32(StatusFailed)
	}
	msg := encodePost(name)
	for _, ent := range entries {
		if !strings.HasPrefix(ent.Name(), "a-") {
			continue
		}
		path := filepath.Join(agents, ent.Name())
		flags := 0
		if e.isStuck(path) {
			flags = unix.MSG_DONTWAIT // waited for once already: until it reads again, drop
		}
		switch err := sendPost(fd, msg, flags, path); {
		case err == nil:
			if flags != 0 {
				e.setStuck(path, false)
			}
		case errors.Is(err, unix.ECONNREFUSED):
			_ = os.Remove(path) // nobody binds it: its process ended
			e.setStuck(path, false)
		case errors.Is(err, unix.EAGAIN):
			e.sockFull.Add(1) // its process has not read for sendTimeout: stuck
			e.setStuck(path, true)
		}
	}
	return uint32(StatusOK)
}

// sendPost sends one post to the agent at path. A signal that comes while it waits for room
// interrupts it with EINTR, which a socket with SO_SNDTIMEO never restarts (signal(7)); the
// post was not sent, so it tries again until sendTimeout has passed, and then reports the
// socket as full: an EINTR ignored lost the post for that process without a count.
func sendPost(fd int, msg []byte, flags int, path string) error {
	start := time.Now()
	for {
		err := unix.Sendto(fd, msg, flags, &unix.SockaddrUnix{Name: path})
		if !errors.Is(err, unix.EINTR) {
			return err
		}
		if time.Since(start) >= sendTimeout {
			return unix.EAGAIN
		}
	}
}

// sendTimeout bounds how long a post waits for room in one agent's socket. notify_post's message
// to notifyd waits for room in notifyd's queue (a MIG simpleroutine sent without timeout), so a
// post may wait here too; but notifyd always drains its queue, and an agent's process may be
// stopped, so a post waits this long and then gives that process up (counted in sockFull).
const sendTimeout = time.Second

// isStuck reports whether a post to the agent at path has waited sendTimeout in vain since its
// last successful one: a stopped process costs this process's posts one wait, not one each.
func (e *emuCenter) isStuck(path string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.stuck[path]
}

func (e *emuCenter) setStuck(path string, stuck bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if stuck {
		if e.stuck == nil {
			e.stuck = map[string]bool{}
		}
		e.stuck[path] = true
	} else {
		delete(e.stuck, path)
	}
}

// sender is the process's one unbound datagram socket for posting. It blocks (up to
// sendTimeout) while a receiver's queue is full: Linux waits for room in the peer's queue
// (unix_dgram_sendmsg, unix_wait_for_peer), whereas MSG_DONTWAIT would drop the post at once.
func (e *emuCenter) sender() (int, error) {
	e.sendOnce.Do(func() {
		e.sendFD, e.sendErr = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if e.sendErr == nil {
			tv := unix.NsecToTimeval(int64(sendTimeout))
			e.sendErr = unix.SetsockoptTimeval(e.sendFD, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
		}
	})
	return e.sendFD, e.sendErr
}

func (e *emuCenter) newTokenLocked(r *emuReg) int32 {
	e.next++
	if e.next <= 0 {
		e.next = 1
	}
	e.regs[e.next] = r
	return e.next
}

// stateGeneration makes sure name has a state file and returns the center's directory and the
// name's generation, which a new registration starts from (posts before it are no news to it).
func (e *emuCenter) stateGeneration(name string) (dir string, gen uint64, ok bool) {
	dir, err := e.directory()
	if err != nil {
		return "", 0, false
	}
	path := statePath(dir, name)
	if err := updateState(path, true, func(*[2]uint64) {}); err != nil {
		return "", 0, false
	}
	_, gen = readState(path)
	return dir, gen, true
}

func (e *emuCenter) RegisterCheck(name string, token *int32) uint32 {
	if len(name) > MaxNameLen {
		return uint32(StatusInvalidName)
	}
	_, gen, ok := e.stateGeneration(name)
	if !ok {
		return uint32(StatusFailed)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	*token = e.newTokenLocked(&emuReg{name: name, fresh: true, seen: gen})
	return uint32(StatusOK)
}

// RegisterMachPort is notify_register_mach_port as libnotify's no-dispatch path and notifyd
// answer it: without NOTIFY_REUSE a new port (queue limit 16) whose receive right goes to the
// caller; with it, the caller's port, which must be a valid name (else
// NOTIFY_STATUS_INVALID_PORT, notify_client.c notify_register_mach_port_no_dispatch) and which
// notifyd uses only if it made it: for any other port it registers nothing and says OK
// (notifyd/notify_proc.c, __notify_server_register_mach_port_2).
func (e *emuCenter) RegisterMachPort(name string, port *uint32, flags int32, token *int32) uint32 {
	if port == nil || token == nil {
		return uint32(StatusInvalidPort)
	}
	if len(name) > MaxNameLen {
		return uint32(StatusInvalidName)
	}
	dir, gen, ok := e.stateGeneration(name)
	if !ok {
		return uint32(StatusFailed)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r := &emuReg{name: name, fresh: true, seen: gen}
	if flags&flagReuse != 0 {
		if t, err := mach.TypeOf(mach.Name(*port)); err != nil || *port == 0 || t&mach.PortType(abi.MACH_PORT_TYPE_RECEIVE|abi.MACH_PORT_TYPE_SEND) == 0 {
			return uint32(StatusInvalidPort)
		}
		if p := e.ports[*port]; p != nil {
			if err := e.startAgentLocked(dir); err != nil {
				return uint32(StatusFailed)
			}
			p.refs++
			r.port = *port
		}
		*token = e.newTokenLocked(r)
		return uint32(StatusOK)
	}
	if err := e.startAgentLocked(dir); err != nil {
		return uint32(StatusFailed)
	}
	recv, send, err := mach.NewPortWithSendRight(mach.PortOptions{QueueLimit: qlimit})
	if err != nil {
		e.stopAgentIfIdleLocked()
		return uint32(StatusFailed)
	}
	n := uint32(recv.Name())
	e.ports[n] = &emuPort{send: send, refs: 1}
	r.port = n
	*port = n // the receive right is the caller's now
	*token = e.newTokenLocked(r)
	return uint32(StatusOK)
}

func (e *emuCenter) reg(token int32) (*emuReg, uint32) {
	r := e.regs[token]
	if r == nil {
		return nil, uint32(StatusInvalidToken)
	}
	return r, uint32(StatusOK)
}

func (e *emuCenter) Check(token int32, check *int32) uint32 {
	e.mu.Lock()
	r, st := e.reg(token)
	e.mu.Unlock()
	if r == nil {
		return st
	}
	_, gen := readState(statePath(e.dir, r.name))
	e.mu.Lock()
	defer e.mu.Unlock()
	*check = 0
	if r.fresh || gen != r.seen {
		*check = 1
	}
	r.fresh, r.seen = false, gen
	return uint32(StatusOK)
}

func (e *emuCenter) GetState(token int32, state *uint64) uint32 {
	e.mu.Lock()
	r, st := e.reg(token)
	e.mu.Unlock()
	if r == nil {
		return st
	}
	*state, _ = readState(statePath(e.dir, r.name))
	return uint32(StatusOK)
}

func (e *emuCenter) SetState(token int32, state uint64) uint32 {
	e.mu.Lock()
	r, st := e.reg(token)
	e.mu.Unlock()
	if r == nil {
		return st
	}
	if err := updateState(statePath(e.dir, r.name), true, func(v *[2]uint64) { v[0] = state }); err != nil {
		return uint32(StatusFailed)
	}
	return uint32(StatusOK)
}

func (e *emuCenter) Suspend(token int32) uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, st := e.reg(token)
	if r != nil {
		r.suspended = true
	}
	return st
}

// Resume delivers once if the name was posted while suspended (notifyd keeps one pending
// notification per suspended client).
func (e *emuCenter) Resume(token int32) uint32 {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, st := e.reg(token)
	if r == nil {
		return st
	}
	r.suspended = false
	if r.pending {
		r.pending = false
		e.sendLocked(token, r)
	}
	return st
}

// Cancel drops the registration; the last one on a port the center made destroys the port, as
// libnotify does for the ports it counts as its own (notify_client.c,
// notify_release_mach_port_locked: mach_port_destruct).
func (e *emuCenter) Cancel(token int32) uint32 {
	e.mu.Lock()
	r, st := e.reg(token)
	if r == nil {
		e.mu.Unlock()
		return st
	}
	delete(e.regs, token)
	if p := e.ports[r.port]; r.port != 0 && p != nil {
		p.refs--
		if p.refs == 0 {
			delete(e.ports, r.port)
			_ = p.send.Close()
			_ = mach.AdoptReceive(mach.Name(r.port)).Close()
		}
	}
	a := e.detachIdleAgentLocked()
	e.mu.Unlock()
	if a != nil {
		a.stop()
	}
	return uint32(StatusOK)
}

func (e *emuCenter) IsValidToken(token int32) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.regs[token] != nil
}

// deliver sends each of this process's registrations for name its message.
func (e *emuCenter) deliver(name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for tok, r := range e.regs {
		if r.name != name || r.port == 0 {
			continue
		}
		r.handled++
		if r.suspended {
			r.pending = true
			continue
		}
		e.sendLocked(tok, r)
	}
}

// sendLocked sends notifyd's message: a bare header, COPY_SEND to the port, msgh_id the token,
// with a zero timeout (Libnotify libnotify.c, _internal_send_port).
func (e *emuCenter) sendLocked(token int32, r *emuReg) {
	m := emu.Msg{Bits: abi.MACH_MSG_TYPE_COPY_SEND, Remote: r.port, ID: token}
	if emu.Send(&m, 0) == abi.MACH_SEND_TIMED_OUT {
		// The timed-out message comes back with the send right its COPY_SEND made (xnu's
		// pseudo-receive); notifyd destroys it (mach_msg_destroy), and so must we, or each
		// drop would leave a user reference behind.
		_ = emu.Deallocate(m.Remote)
		e.queueFull.Add(1)
		r.dropped++
	}
}

// agent is the socket through which the process hears posts, and its reader.
type agent struct {
	conn *net.UnixConn
	path string
	done chan struct{}
}

func (e *emuCenter) startAgentLocked(dir string) error {
	if e.agent != nil {
		return nil
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	path := filepath.Join(dir, agentsDir, fmt.Sprintf("a-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:])))
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	raw, err := conn.SyscallConn()
	if err == nil {
		cerr := raw.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
		})
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		conn.Close()
		os.Remove(path)
		return err
	}
	a := &agent{conn: conn, path: path, done: make(chan struct{})}
	e.agent = a
	go e.serve(a)
	return nil
}

// detachIdleAgentLocked takes the agent away when no registration needs it; the caller stops it
// after unlocking (its reader takes the lock to deliver).
func (e *emuCenter) detachIdleAgentLocked() *agent {
	for _, r := range e.regs {
		if r.port != 0 {
			return nil
		}
	}
	a := e.agent
	e.agent = nil
	return a
}

func (e *emuCenter) stopAgentIfIdleLocked() {
	if a := e.detachIdleAgentLocked(); a != nil {
		go a.stop()
	}
}

func (a *agent) stop() {
	_ = os.Remove(a.path)
	_ = a.conn.Close()
	<-a.done
}

// serve reads the agent's datagrams until the agent stops.
func (e *emuCenter) serve(a *agent) {
	defer close(a.done)
	buf := make([]byte, maxDatagram+1)
	oob := make([]byte, unix.CmsgSpace(unix.SizeofUcred)+unix.CmsgSpace(4*64))
	for {
		n, oobn, flags, _, err := a.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		name, ok := acceptPost(buf[:n], oob[:oobn], flags)
		if !ok {
			e.garbage.Add(1)
			continue
		}
		e.deliver(name)
	}
}

// acceptPost returns the name a datagram posts, if it is a whole post from this user. Every
// descriptor it carried is closed, whatever it was.
func acceptPost(b, oob []byte, flags int) (string, bool) {
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	fromUs := false
	for _, c := range cmsgs {
		if fds, err := unix.ParseUnixRights(&c); err == nil {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
		if cred, err := unix.ParseUnixCredentials(&c); err == nil {
			fromUs = int(cred.Uid) == os.Getuid()
		}
	}
	if err != nil || !fromUs || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		return "", false
	}
	return decodePost(b)
}

// statePath is the name's state file: a hash, since a name may hold any byte but NUL.
func statePath(dir, name string) string {
	h := sha256.Sum256([]byte(name))
	return filepath.Join(dir, "s-"+hex.EncodeToString(h[:16]))
}

// openState opens a state file, refusing anything but a regular file (another process of the
// user may have put a FIFO or a link there).
func openState(path string, flags int) (int, error) {
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o600)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, fmt.Errorf("notify: %s is not a regular file", path)
	}
	return fd, nil
}

// readState returns a name's state and post generation; a missing or malformed file reads as
// zeros.
func readState(path string) (state, gen uint64) {
	fd, err := openState(path, unix.O_RDONLY)
	if err != nil {
		return 0, 0
	}
	defer unix.Close(fd)
	_ = unix.Flock(fd, unix.LOCK_SH)
	var b [16]byte
	if n, err := unix.Pread(fd, b[:], 0); err != nil || n != len(b) {
		return 0, 0
	}
	return binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])
}

// updateState changes a name's state file under an exclusive lock; without create, a missing
// file is left missing.
func updateState(path string, create bool, fn func(v *[2]uint64)) error {
	flags := unix.O_RDWR
	if create {
		flags |= unix.O_CREAT
	}
	fd, err := openState(path, flags)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		return err
	}
	var b [16]byte
	var v [2]uint64
	if n, err := unix.Pread(fd, b[:], 0); err == nil && n == len(b) {
		v[0], v[1] = binary.LittleEndian.Uint64(b[:]), binary.LittleEndian.Uint64(b[8:])
	}
	fn(&v)
	binary.LittleEndian.PutUint64(b[:], v[0])
	binary.LittleEndian.PutUint64(b[8:], v[1])
	_, err = unix.Pwrite(fd, b[:], 0)
	return err
}
