package peer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/machport/machport/mach"
)

// newHostSystem looks processes up in /proc, and keeps a pidfd on each process it has seen that
// lives (see liveTable). It and tokenForPID are variables for the libSystem double's seam
// (process_double_linux.go), which machport's tests alone can switch.
var newHostSystem = func() system { return procSystem{fs: procFS{root: "/proc"}, live: newLiveTable()} }

// procReader reads what a Linux process look-up needs; procFS reads the real /proc, a test a
// fake one.
type procReader interface {
	// stat returns /proc/PID/stat.
	stat(pid int) ([]byte, error)
	// exe returns the target of /proc/PID/exe.
	exe(pid int) (string, error)
	// status returns /proc/PID/status.
	status(pid int) ([]byte, error)
}

type procFS struct{ root string }

// readSmall reads a small /proc file into a buffer of the stack's size, with one read: /proc's
// stat and status are generated whole at each read.
func readSmall(path string, size int) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	buf := make([]byte, size)
	n, err := syscall.Read(fd, buf)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	return buf[:n], nil
}

func (f procFS) stat(pid int) ([]byte, error) {
	return readSmall(f.root+"/"+strconv.Itoa(pid)+"/stat", 1024)
}

func (f procFS) status(pid int) ([]byte, error) {
	return readSmall(f.root+"/"+strconv.Itoa(pid)+"/status", 4096)
}

func (f procFS) exe(pid int) (string, error) {
	return os.Readlink(f.root + "/" + strconv.Itoa(pid) + "/exe")
}

// procSystem names a process by its pid and start time.
type procSystem struct {
	fs   procReader
	live *liveTable // nil: the start time is read at every check
}

var errBadStat = errors.New("malformed /proc/PID/stat")

// startTime parses field 22 (starttime, in clock ticks since boot) of /proc/PID/stat. The second
// field, the command name, is in parentheses and may hold spaces and parentheses itself: the
// fields after it start after the last ')' (as procps does).
func startTime(stat []byte) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errBadStat
	}
	fields := strings.Fields(string(stat[i+1:]))
	// fields[0] is field 3 (state): field 22 is fields[19].
	if len(fields) < 20 {
		return 0, errBadStat
	}
	t, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, errBadStat
	}
	return t, nil
}

func (s procSystem) version(tok mach.AuditToken) (uint64, error) {
	pid := tok.PID()
	if s.live != nil {
		if start, ok := s.live.get(pid); ok {
			return start, nil
		}
	}
	start, err := s.readStart(pid)
	if err != nil {
		return 0, err
	}
	if s.live != nil {
		s.live.add(pid, start, s.readStart)
	}
	return start, nil
}

func (s procSystem) readStart(pid int) (uint64, error) {
	stat, err := s.fs.stat(pid)
	if err != nil {
		return 0, err
	}
	return startTime(stat)
}

func (s procSystem) close() {
	if s.live != nil {
		s.live.close()
	}
}

// errReused says that the pid names another process than the one first seen.
var errReused = errors.New("the pid's start time changed: it names another process")

func (s procSystem) lookup(tok mach.AuditToken, version uint64, code bool) (*process, error) {
	if code {
		return nil, errors.ErrUnsupported // New refuses code-signing requirements here
	}
	pid := tok.PID()
	exe, err := s.fs.exe(pid)
	if err != nil {
		return nil, err
	}
	if err := s.sameUser(pid, tok.EUID()); err != nil {
		return nil, err
	}
	// Read after the executable and the user: if the start time is still the one the key was
	// made with, both belong to that process.
	after, err := s.readStart(pid)
	if err != nil {
		return nil, err
	}
	if after != version {
		return nil, errReused
	}
	return &process{exe: exe}, nil
}

// sameUser requires the process at pid to run as uid (as its real, effective, saved or file-system
// user): a pid reused by another user's process is not the sender.
func (s procSystem) sameUser(pid int, uid uint32) error {
	status, err := s.fs.status(pid)
	if err != nil {
		return err
	}
	for line := range strings.Lines(string(status)) {
		rest, ok := strings.CutPrefix(line, "Uid:")
		if !ok {
			continue
		}
		for _, f := range strings.Fields(rest) {
			if f == strconv.FormatUint(uint64(uid), 10) {
				return nil
			}
		}
		return fmt.Errorf("the process at pid %d runs as uid %s, the message came from uid %d: %w", pid, strings.TrimSpace(rest), uid, errReused)
	}
	return errBadStat
}

func (procSystem) parseCode(string) (*codeRequirement, error) {
	return nil, fmt.Errorf("peer: code-signing requirements exist only on macOS: %w", errors.ErrUnsupported)
}

// TokenForPID makes the identity of the live process pid as an audit token would carry it, for
// checking a requirement against a process rather than a message (machping check-peer). On Linux
// it reads /proc/PID/status: the real and effective user and group, and the pid; the audit user
// is /proc/PID/loginuid (4294967295 where unset or unreadable), the session and the pid version
// are 0 (Linux has neither in a token; Check names the process by its start time). Unlike a
// message's token, which the kernel writes, this is read at one moment: a pid reused afterwards
// names the new process (Check's look-up then still requires the same user). A pid with no
// live process (none, or a zombie not yet reaped, as on macOS) is an error wrapping
// ErrProcessGone and fs.ErrNotExist.
func TokenForPID(pid int) (mach.AuditToken, error) { return tokenForPID(pid) }

var tokenForPID = func(pid int) (mach.AuditToken, error) {
	if pid <= 0 {
		return mach.AuditToken{}, fmt.Errorf("%w: pid %d: %w", ErrProcessGone, pid, os.ErrNotExist)
	}
	return tokenFromProc(procFS{root: "/proc"}, pid)
}

func tokenFromProc(fs procReader, pid int) (mach.AuditToken, error) {
	status, err := fs.status(pid)
	if err != nil {
		return mach.AuditToken{}, fmt.Errorf("%w: pid %d: %w", ErrProcessGone, pid, err)
	}
	// A zombie (exited, not yet reaped) or a dead task is gone, as on macOS, where
	// task_name_for_pid refuses a zombie: "State:\tZ (zombie)" (fs/proc/array.c, task_state).
	for line := range strings.Lines(string(status)) {
		if state, ok := strings.CutPrefix(line, "State:"); ok {
			if f := strings.Fields(state); len(f) > 0 && (f[0] == "Z" || f[0] == "X") {
				return mach.AuditToken{}, fmt.Errorf("%w: pid %d has exited (state %s): %w", ErrProcessGone, pid, f[0], os.ErrNotExist)
			}
			break
		}
	}
	// "Uid:\treal\teffective\tsaved\tfs", the same for Gid (fs/proc/array.c, task_state).
	ids := func(prefix string) (real, eff uint32, err error) {
		for line := range strings.Lines(string(status)) {
			rest, ok := strings.CutPrefix(line, prefix)
			if !ok {
				continue
			}
			f := strings.Fields(rest)
			if len(f) < 2 {
				break
			}
			r, err1 := strconv.ParseUint(f[0], 10, 32)
			e, err2 := strconv.ParseUint(f[1], 10, 32)
			if err1 != nil || err2 != nil {
				break
			}
			return uint32(r), uint32(e), nil
		}
		return 0, 0, fmt.Errorf("pid %d: %s line: %w", pid, prefix, errBadStat)
	}
	ruid, euid, err := ids("Uid:")
	if err != nil {
		return mach.AuditToken{}, err
	}
	rgid, egid, err := ids("Gid:")
	if err != nil {
		return mach.AuditToken{}, err
	}
	auid := ^uint32(0)
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/loginuid"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32); err == nil {
			auid = uint32(v)
		}
	}
	// xnu's layout (set_security_token_task_internal): auid, euid, egid, ruid, rgid, pid, asid,
	// pid version.
	return mach.AuditToken{auid, euid, egid, ruid, rgid, uint32(pid), 0, 0}, nil
}
