//go:build linux

package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Who owns a name, on disk. Per name the directory holds three entries:
//
//   - <key>.owner, the owner's record: the name, the owner's pid and its agent's id, a line each
//     (read from the end, so that a name holding newlines parses too);
//   - <key>.sock, a symbolic link to the owner agent's listening socket (connect(2) follows it);
//   - <key>.lock, a symbolic link to the owner agent's lock: a guard against a registrant of the
//     earlier format (below), which opens that path with O_NOFOLLOW to flock it, and so fails
//     (ELOOP) while the name is served here.
//
// A process serving names runs one agent (agent_linux.go), which holds an exclusive flock on
// agents/<id>.lock for its life. A record is the name's claim only while the agent it names
// runs, which its flock says: the kernel drops it when the process dies, so a killed owner frees
// every name it served at once, as the per-name flock of the earlier format did, for no
// descriptor per name. A lock file removed behind a live agent's back (systemd-tmpfiles, rm) is
// no sign of death: the agent's socket and open descriptor say instead (agentAlive) until the
// agent makes it again (relock). A record that does not parse is not a free name while an agent it may belong to runs
// (recordAgents).
//
// Changes to records and links are made under an exclusive flock of names.lock (claims, and the
// clean-up of a dead owner's entries), so two processes claiming one name cannot both see it
// free. An agent creates its lock under the same flock, so whoever holds it and finds an agent's
// lock free knows that agent is dead. Readers (look-ups, Owner, ServedBy) take no lock.
//
// The earlier format (<key>.sock a listening socket of its own, <key>.lock flocked by the
// owner) may be left behind by a process killed before an upgrade: such entries are removed
// when their lock is free, and a name whose old lock is held counts as served.

// dirLockFile is the directory's lock for claims and clean-ups.
const dirLockFile = "names.lock"

// agentsDir is the folder of the agents' sockets and locks.
const agentsDir = "agents"

// lockDir takes the directory's lock, waiting for it until ctx ends.
func lockDir(ctx context.Context, dir string) (*dirLock, error) {
	return lockDirWith(dir, func(fd int) error { return flockContext(ctx, fd) })
}

// tryLockDir takes the directory's lock if nobody holds it, and fails with EWOULDBLOCK at once
// otherwise.
func tryLockDir(dir string) (*dirLock, error) {
	return lockDirWith(dir, func(fd int) error {
		err := flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			unix.Close(fd)
		}
		return err
	})
}

// lockDirWith takes the directory's lock with take, which flocks the descriptor it is given and
// on failure closes it. The lock must be on the file the path names now: the last agent to stop
// removes it (tidy), and a lock won on the removed file would be worthless, so the inode is
// compared after locking and the whole step retried.
func lockDirWith(dir string, take func(fd int) error) (*dirLock, error) {
	path := filepath.Join(dir, dirLockFile)
	for {
		fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("namespace lock: %w", err)
		}
		if err := take(fd); err != nil {
			return nil, fmt.Errorf("namespace lock: %w", err)
		}
		var held, now unix.Stat_t
		if unix.Fstat(fd, &held) == nil && unix.Stat(path, &now) == nil && held.Ino == now.Ino && held.Dev == now.Dev {
			return &dirLock{dir: dir, path: path, fd: fd}, nil
		}
		unix.Close(fd)
	}
}

// flockContext takes an exclusive flock of fd, waiting for it until ctx ends; on failure fd is
// closed (now, or later: see below). A waiting flock cannot be cancelled (Go's signal handlers
// restart it), so once ctx can end the wait runs on a goroutine of its own, and on ctx's end
// flockContext returns ctx's error and leaves fd to that goroutine, which closes it when the
// flock returns: when the other process releases the lock, at the latest when it dies.
func flockContext(ctx context.Context, fd int) error {
	err := flock(fd, unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		if ctx.Done() == nil {
			err = flock(fd, unix.LOCK_EX)
		} else {
			err = flockWait(ctx, fd)
			if ctx.Err() != nil && err == ctx.Err() {
				return err // fd is the waiting goroutine's
			}
		}
	}
	if err != nil {
		unix.Close(fd)
	}
	return err
}

// flockWait waits for the flock of fd on a goroutine until ctx ends; it returns ctx's error
// when it gave up, leaving fd to the goroutine.
func flockWait(ctx context.Context, fd int) error {
	var mu sync.Mutex
	var gaveUp bool
	done := make(chan error, 1)
	go func() {
		err := flock(fd, unix.LOCK_EX)
		mu.Lock()
		defer mu.Unlock()
		if gaveUp {
			unix.Close(fd)
			return
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		select {
		case err := <-done: // taken meanwhile: as good as before ctx ended
			return err
		default:
			gaveUp = true
			return ctx.Err()
		}
	}
}

// flock is flock(2), retried when a signal interrupts it.
func flock(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// dirLock is the directory's lock, held.
type dirLock struct {
	dir, path string
	fd        int
}

// unlock releases the lock. With tidy, when no agent runs any more it removes the agents'
// folder and the lock file, so that a namespace nobody serves in is left empty.
func (l *dirLock) unlock(tidy bool) {
	if tidy {
		err := os.Remove(filepath.Join(l.dir, agentsDir))
		if err == nil || errors.Is(err, os.ErrNotExist) {
			_ = os.Remove(l.path)
		}
	}
	unix.Close(l.fd)
}

// ownerRecord is what the namespace writes in a name's record: the name, the owner's pid and its
// agent's id, each followed by a newline. The name may hold newlines of its own (launchd takes
// any C string), so the record is read from its end (parseOwnerRecord).
func ownerRecord(name string, pid int, agent string) string {
	return fmt.Sprintf("%s\n%d\n%s\n", name, pid, agent)
}

// parseOwnerRecord reads a record ownerRecord wrote. It reads from the end: the agent's id and
// the pid hold no newline, so the name is all that comes before them, whatever it holds, and
// every record ownerRecord writes parses back to its fields. A record of the earlier format (no
// agent) does not parse: nothing in it tells whether its owner lives.
func parseOwnerRecord(b []byte) (name string, pid int, agent string, ok bool) {
	rest, ok := strings.CutSuffix(string(b), "\n")
	if !ok {
		return "", 0, "", false
	}
	rest, agent, ok = cutLastLine(rest)
	if !ok || !validAgentID(agent) {
		return "", 0, "", false
	}
	name, digits, ok := cutLastLine(rest)
	if !ok {
		return "", 0, "", false
	}
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != digits {
		return "", 0, "", false
	}
	return name, pid, agent, true
}

// cutLastLine splits s at its last newline.
func cutLastLine(s string) (before, last string, ok bool) {
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// recordAgents lists the agents a record that does not parse may belong to: any line of it
// shaped as an agent's id, and the agent the name's link leads to. A record the namespace
// wrote always parses, so one that does not is damaged (a writer killed midway, another
// program): it counts as its owner's while any of these agents runs, so that nobody takes a
// name from a live owner on a doubt.
func recordAgents(b []byte, link string) []string {
	var ids []string
	for _, l := range strings.Split(string(b), "\n") {
		if validAgentID(l) {
			ids = append(ids, l)
		}
	}
	if target, err := os.Readlink(link); err == nil {
		if id, ok := strings.CutSuffix(filepath.Base(target), ".sock"); ok && validAgentID(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// validAgentID reports whether id has the shape newAgentID gives ids ("a-<pid>-<16 hex>"), so a
// record cannot send the namespace to a path of its choosing.
func validAgentID(id string) bool {
	pid, rnd, ok := strings.Cut(strings.TrimPrefix(id, "a-"), "-")
	return ok && strings.HasPrefix(id, "a-") && pid != "" && strings.Trim(pid, "0123456789") == "" &&
		len(rnd) == 16 && strings.Trim(rnd, "0123456789abcdef") == ""
}

// agentPaths are an agent's socket and lock.
func agentPaths(dir, id string) (sock, lock string) {
	base := filepath.Join(dir, agentsDir, id)
	return base + ".sock", base + ".lock"
}

// maxSockPath is the longest path a socket address holds: sun_path's 108 bytes, less the NUL.
const maxSockPath = len(unix.RawSockaddrUnix{}.Path) - 1

// sockAddr is a path to give bind(2) or connect(2) for the socket (or link to one) at path. A
// path longer than sun_path holds is reached through a descriptor of its directory,
// /proc/self/fd/<n>/<file>, which Linux resolves like any path (the kernel follows the magic
// link to the directory, then the file's name and any symbolic link it is), whatever the
// directory's length; done closes that descriptor once the call is made. The namespace's
// directory may be long: a name's link is 40 bytes longer than it (48 for a per-PID name).
func sockAddr(path string) (addr string, done func(), err error) {
	if len(path) <= maxSockPath {
		return path, func() {}, nil
	}
	fd, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("socket path of %d bytes: its directory: %w", len(path), err)
	}
	addr = "/proc/self/fd/" + strconv.Itoa(fd) + "/" + filepath.Base(path)
	var st unix.Stat_t
	if err := unix.Stat(filepath.Dir(addr), &st); err != nil {
		unix.Close(fd)
		return "", nil, fmt.Errorf("socket path of %d bytes, over the %d of sun_path, and /proc/self/fd cannot shorten it: %w", len(path), maxSockPath, err)
	}
	return addr, func() { unix.Close(fd) }, nil
}

// heldByOther reports whether another open file holds a flock on path; a missing path is not
// held. It locks nothing for longer than the test.
func heldByOther(path string) (bool, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(fd)
	err = unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}

// legacyOwner reads the record of a live earlier-format owner from its lock at path: the name
// and the owner's pid, a line each. ok is false when the lock is not a held regular file (a
// guard is a symbolic link: the open fails) or its record does not parse.
func legacyOwner(path string) (name string, pid int, ok bool) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return "", 0, false
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		return "", 0, false // not held (or unlockable): no live owner
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", 0, false
	}
	rest, ok := strings.CutSuffix(string(b), "\n")
	if !ok {
		return "", 0, false
	}
	name, digits, ok := cutLastLine(rest)
	pid, err = strconv.Atoi(digits)
	if !ok || err != nil || pid <= 0 {
		return "", 0, false
	}
	return name, pid, true
}

// agentAlive reports whether the agent id runs. An error counts as alive, so that nobody takes a
// name on a doubt.
//
// Its lock decides when it is at its path: held, the agent runs; free, it is dead (the kernel
// dropped the flock with the process, and an agent flocks its lock before renaming it into
// place: makeLock). But the lock is a plain file that something else may remove while the agent
// runs: systemd-tmpfiles removes the plain files of /tmp that are older than its age (10 days in
// the default tmp.conf; tmpfiles.d(5)), the namespace's directory without XDG_RUNTIME_DIR, and a
// user's rm -rf does too. The agent makes it again (relock), at once with inotify and within
// pollSocketEvery without; until then, a missing lock is no sign of death, and two others are
// asked, each of which a dead agent fails:
//
//   - its socket (tmpfiles leaves sockets in use alone): a connect to it succeeds, or finds its
//     queue full, only while a process listens on it. Refused, the agent is dead: its socket is
//     listening before its file is renamed into place (listenAt), so a live agent's never refuses.
//   - with its socket's file gone too (rm -rf), its process, the pid in its id: an agent holds
//     its lock open, removed or not, so a live one has a descriptor of it in /proc/<pid>/fd.
//     This sign needs the owner in this process's pid namespace, and /proc; without /proc the
//     owner counts as alive, on a doubt.
//
// Look-ups ask none of this unless their connect failed.
func agentAlive(dir, id string) bool {
	sock, lock := agentPaths(dir, id)
	switch held, err := lockHeld(lock); {
	case err != nil:
		return true
	case held != lockMissing:
		return held == lockIsHeld
	}
	switch err := probeSocket(sock); {
	case err == nil, errors.Is(err, unix.EAGAIN):
		return true
	case errors.Is(err, unix.ECONNREFUSED):
		return false
	case !errors.Is(err, unix.ENOENT):
		return true
	}
	holds, err := processHoldsLock(id)
	return holds || err != nil
}

// The states of an agent's lock.
const (
	lockMissing = iota
	lockIsHeld
	lockIsFree
)

// lockHeld says whether the agent lock at path is held, free or missing. A lock found free is
// one the path still names after the test: one the agent removed and replaced meanwhile (relock)
// would be found free once the agent let it go, and reads as missing instead.
func lockHeld(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENOENT) {
		return lockMissing, nil
	}
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	err = unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return lockIsHeld, nil
	}
	if err != nil {
		return 0, err
	}
	var tested unix.Stat_t
	if err := unix.Fstat(fd, &tested); err != nil {
		return 0, err
	}
	now, err := statID(path)
	if errors.Is(err, unix.ENOENT) || err == nil && now != (fileID{dev: tested.Dev, ino: tested.Ino}) {
		return lockMissing, nil
	}
	if err != nil {
		return 0, err
	}
	return lockIsFree, nil
}

// probeSocket connects to the agent socket at path and hangs up at once (the agent reads the
// hang-up as a request that never came): nil when a process listens on it.
func probeSocket(path string) error {
	addr, done, err := sockAddr(path)
	if err != nil {
		return err
	}
	defer done()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for {
		err = unix.Connect(fd, &unix.SockaddrUnix{Name: addr})
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// processHoldsLock reports whether the process of agent id (the pid in the id) holds the
// agent's lock open, at its path or removed: /proc/<pid>/fd lists it as a link to the file's
// path, with " (deleted)" once it is removed. A process that is gone, or that this one may not
// signal (another user's, which took up the pid: a namespace's agents are all of its user,
// whose directory it is), holds nothing.
func processHoldsLock(id string) (bool, error) {
	digits, _, _ := strings.Cut(strings.TrimPrefix(id, "a-"), "-")
	pid, err := strconv.Atoi(digits)
	if err != nil || pid <= 0 {
		return false, nil
	}
	if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) || errors.Is(err, unix.EPERM) {
		return false, nil
	}
	fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	f, err := os.Open(fdDir)
	if err != nil {
		if errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			return false, nil // it died meanwhile
		}
		return false, err
	}
	fds, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return false, err
	}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(fdDir, fd))
		if err != nil {
			continue // closed meanwhile
		}
		switch filepath.Base(strings.TrimSuffix(target, " (deleted)")) {
		case id + ".lock", id + ".lock" + tmpSuffix:
			return true, nil
		}
	}
	return false, nil
}

// removeDeadAgent removes the files of agent id, which the caller, holding the directory's
// lock, found dead.
func removeDeadAgent(dir, id string) {
	sock, lock := agentPaths(dir, id)
	_ = os.Remove(sock)
	_ = os.Remove(lock)
}

// nameFree reports, with the directory's lock held, whether nobody serves the name at p (in this
// format, or the earlier one whose lock is at p.legacyLock), and removes what a dead owner left
// of it (not the link: the caller replaces or removes it).
func nameFree(p namePaths) (bool, error) {
	b, err := os.ReadFile(p.record)
	switch {
	case err == nil:
		if _, _, agent, ok := parseOwnerRecord(b); ok {
			if agentAlive(p.dir, agent) {
				return false, nil
			}
			removeDeadAgent(p.dir, agent)
		} else {
			for _, agent := range recordAgents(b, p.sock) {
				if agentAlive(p.dir, agent) {
					return false, nil
				}
			}
		}
		// The record's agent is dead, or a record that does not parse names no live agent:
		// it is stale.
		if err := os.Remove(p.record); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
	case !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("owner record: %w", err)
	}
	if st, err := os.Lstat(p.legacyLock); err == nil && st.Mode()&os.ModeSymlink != 0 {
		// A guard (claim), whose owner the record judged dead or left none.
		if err := os.Remove(p.legacyLock); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		return true, nil
	}
	held, err := heldByOther(p.legacyLock)
	if err != nil || held {
		return false, err
	}
	if err := os.Remove(p.legacyLock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// claim makes agent id, of this process, the owner of the name at p: it writes the record and
// points the name's link at the agent's socket. taken is true when another process serves the
// name.
func claim(p namePaths, name, id string) (taken bool, err error) {
	l, err := lockDir(context.Background(), p.dir)
	if err != nil {
		return false, err
	}
	defer l.unlock(false)
	free, err := nameFree(p)
	if err != nil || !free {
		return !free && err == nil, err
	}
	// The guard goes first: an earlier-format registrant, which takes no names.lock, may have
	// made its lock since nameFree found none, and then the name is its own.
	_, lock := agentPaths(".", id)
	if err := os.Symlink(lock, p.legacyLock); err != nil {
		if errors.Is(err, os.ErrExist) {
			return true, nil
		}
		return false, fmt.Errorf("earlier-format guard: %w", err)
	}
	// Whatever is at the link's path is a dead owner's (a link, or an earlier-format socket).
	if err := os.Remove(p.sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		removeGuard(p)
		return false, err
	}
	fd, err := unix.Open(p.record, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return false, fmt.Errorf("owner record: %w", err)
	}
	_, err = unix.Write(fd, []byte(ownerRecord(name, os.Getpid(), id)))
	unix.Close(fd)
	if err == nil {
		sock, _ := agentPaths(".", id)
		err = os.Symlink(sock, p.sock) // relative to the directory, which may move
	}
	if err != nil {
		_ = os.Remove(p.record)
		removeGuard(p)
		return false, err
	}
	return false, nil
}

// removeGuard removes the name's earlier-format guard, a symbolic link: never a lock file,
// which is an earlier-format owner's.
func removeGuard(p namePaths) {
	if st, err := os.Lstat(p.legacyLock); err == nil && st.Mode()&os.ModeSymlink != 0 {
		_ = os.Remove(p.legacyLock)
	}
}

// unclaim removes a name this process serves from the directory: the link first, so that new
// look-ups find nothing, then the record. Nobody else changes them while the record names a
// live agent, so no lock is needed.
func unclaim(p namePaths) {
	_ = os.Remove(p.sock)
	removeGuard(p) // before the record: with the record gone, the name may be claimed again
	_ = os.Remove(p.record)
}

// cleanStale removes the entries of a name whose owner is dead: its link led to a socket that
// refused the connection or to nothing. A registrant may have claimed the name meanwhile, so the
// owner is checked again under the directory's lock, which it waits for until ctx ends (the
// entries then stay for the next look-up or registrant). It reports whether it found the name's
// owner alive, whose entries it leaves alone.
func cleanStale(ctx context.Context, p namePaths) (ownerLives bool) {
	l, err := lockDir(ctx, p.dir)
	if err != nil {
		return false
	}
	defer l.unlock(true)
	free, err := nameFree(p)
	if err == nil && free {
		_ = os.Remove(p.sock)
	}
	return err == nil && !free
}

// sweepDeadAgents removes, with the directory's lock held, the files of agents whose process
// died (their names' records are found stale one by one, when next claimed or looked up), and
// what one killed while making its socket or lock again left at a path of its own (tmpSuffix).
func sweepDeadAgents(dir string) {
	locks, _ := filepath.Glob(filepath.Join(dir, agentsDir, "a-*.lock"))
	for _, l := range locks {
		id := strings.TrimSuffix(filepath.Base(l), ".lock")
		if validAgentID(id) && !agentAlive(dir, id) {
			removeDeadAgent(dir, id)
		}
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, agentsDir, "a-*"+tmpSuffix))
	for _, t := range tmps {
		base := strings.TrimSuffix(filepath.Base(t), tmpSuffix)
		id := strings.TrimSuffix(strings.TrimSuffix(base, ".lock"), ".sock")
		if validAgentID(id) && id != base && !agentAlive(dir, id) {
			_ = os.Remove(t)
		}
	}
}
