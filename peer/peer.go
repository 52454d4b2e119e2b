// Package peer states who may be on the other end of a Mach conversation: a Requirement is a set
// of predicates over a peer's identity (pid, user, group, executable and, on macOS, a
// code-signing requirement), checked against the audit token the kernel puts in every received
// message's trailer (mach.Trailer.Audit). Package cfmessageport takes one on servers (a client
// failing it gets no answer) and on clients (a server failing it invalidates the Remote).
//
// The uid, gid and pid come from the token itself, which the kernel writes and the sender cannot
// forge; they cost a comparison. The executable and the code signature are not in the token: they
// are looked up from the process the token names, and the verdict is cached by the process's
// identity, so that a process is looked up once, not per message:
//
//   - On macOS the token carries the pid's version, which changes when a pid is reused; the
//     look-up goes through calls that take the whole token (csops_audittoken,
//     SecCodeCopyGuestWithAttributes with kSecGuestAttributeAudit), which fail for a process that
//     is no longer the one that sent the message. The cache key is the pid and its version.
//   - On Linux the token has no pid version: the process is named by its pid and its start time
//     (field 22 of /proc/PID/stat). The executable (/proc/PID/exe) is read between two reads of
//     the start time, so that a pid reused meanwhile fails, and the process at the pid must run
//     as the token's user. The cache key is the pid and the start time, which is read at every
//     message, or, cheaper, a pidfd kept on the process shows that it has not exited (so its pid
//     was not reused): a process that reuses a cached pid has another start time and is looked
//     up afresh. Left open: a sender that exits, and whose pid is reused by a
//     process of the same user, between sending a message and its check is judged as the new
//     process (the window is the receive-to-check time; pids are handed out in sequence, so the
//     pid space must wrap within it).
//
// A code-signing requirement (CodeSigning) exists only on macOS; on Linux New refuses it with an
// error wrapping errors.ErrUnsupported, never treating it as met.
//
// Parse reads a requirement from text (`uid=0,501; exe=/usr/local/libexec/helper`), as machping's
// --require takes it; Expr writes one back. Explain gives every predicate's verdict on a peer, for
// debugging, without touching the cache; TokenForPID makes a live process's identity (on Linux from
// /proc; on macOS its audit token, from task_name_for_pid and task_info) for checking a process
// rather than a message (machping check-peer).
//
// What a requirement does not protect against: root (which can forge credentials on Linux and
// debug or replace any process on macOS), and another process that meets the same predicates
// (the same user, the same executable, the same signature): a requirement names a kind of
// process, not one process.
//
// Status: the Linux look-ups run and are tested; the macOS ones (process_libsystem.go) build for
// darwin/arm64 and darwin/amd64, their bindings are checked against the macOS 13.3 SDK facts
// where the facts have them (see internal/darwin), and they are executed on Linux against the
// libSystem double (internal/darwin/libsystemdouble), but they have not run on macOS.
package peer

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/machport/machport/mach"
)

// One sentinel per cause of a failed check or construction; a *CheckError wraps exactly one.
var (
	// ErrPIDMismatch: the peer's pid is not the one required.
	ErrPIDMismatch = errors.New("peer: pid does not match")
	// ErrUIDMismatch: the peer's effective user is not one required.
	ErrUIDMismatch = errors.New("peer: user does not match")
	// ErrGIDMismatch: the peer's effective group is not one required.
	ErrGIDMismatch = errors.New("peer: group does not match")
	// ErrExecutableMismatch: the peer runs another executable.
	ErrExecutableMismatch = errors.New("peer: executable does not match")
	// ErrCodeSigningFailed: the peer's code does not satisfy the code-signing requirement (or
	// its signature is invalid).
	ErrCodeSigningFailed = errors.New("peer: code-signing requirement not satisfied")
	// ErrProcessGone: the process the token names could not be looked up: it exited, or its pid
	// now names another process.
	ErrProcessGone = errors.New("peer: the process is gone or its pid was reused")
	// ErrInvalidRequirement: New was given a predicate that cannot be checked (an empty or
	// relative path, no uids, a requirement string that does not parse).
	ErrInvalidRequirement = errors.New("peer: invalid requirement")
)

// CheckError is a failed check: which predicate failed, for which process, and why (one of the
// sentinels above, maybe wrapping a system error).
type CheckError struct {
	Predicate string // the predicate as String gives it, e.g. `uid == 501`
	PID       int
	Got       string // what the peer has, when known (its uid, its executable)
	Err       error
}

func (e *CheckError) Error() string {
	s := fmt.Sprintf("peer: pid %d fails %s", e.PID, e.Predicate)
	if e.Got != "" {
		s += " (it has " + e.Got + ")"
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *CheckError) Unwrap() error { return e.Err }

// Predicate is one condition on the peer's identity. Make them with PID, UID, GID, Executable
// and CodeSigning.
type Predicate interface {
	// String gives the predicate in a short readable form, which a failed check names.
	String() string
	// check tests the token alone (process == nil) or, for a predicate that needs it, the
	// process looked up from it.
	check(tok mach.AuditToken, proc *process) (got string, err error)
	needsProcess() bool
}

// process is what is looked up about the process an audit token names.
type process struct {
	exe string // its executable's absolute path
	// code checks the process's code against a parsed code-signing requirement (macOS: its
	// SecCodeRef); nil where there is none. close releases it.
	code codeChecker
}

// codeChecker is a process's code, as the platform's code signing sees it.
type codeChecker interface {
	check(req *codeRequirement) error
	close()
}

type pidPred int

// PID requires the peer's pid. (A pid alone names a process only while it lives: pair it with
// Executable or a user.)
func PID(pid int) Predicate { return pidPred(pid) }

func (p pidPred) String() string     { return "pid == " + strconv.Itoa(int(p)) }
func (p pidPred) needsProcess() bool { return false }
func (p pidPred) check(tok mach.AuditToken, _ *process) (string, error) {
	if tok.PID() != int(p) {
		return "", ErrPIDMismatch
	}
	return "", nil
}

type idPred struct {
	what string // "uid" or "gid"
	ids  []uint32
	err  error
	get  func(mach.AuditToken) uint32
}

// UID requires the peer's effective user to be one of uids.
func UID(uids ...uint32) Predicate {
	return idPred{what: "uid", ids: uids, err: ErrUIDMismatch, get: mach.AuditToken.EUID}
}

// GID requires the peer's effective group to be one of gids.
func GID(gids ...uint32) Predicate {
	return idPred{what: "gid", ids: gids, err: ErrGIDMismatch, get: mach.AuditToken.EGID}
}

func (p idPred) String() string {
	if len(p.ids) == 1 {
		return fmt.Sprintf("%s == %d", p.what, p.ids[0])
	}
	return fmt.Sprintf("%s in %v", p.what, p.ids)
}
func (p idPred) needsProcess() bool { return false }
func (p idPred) check(tok mach.AuditToken, _ *process) (string, error) {
	id := p.get(tok)
	for _, want := range p.ids {
		if id == want {
			return "", nil
		}
	}
	return fmt.Sprintf("%s %d", p.what, id), p.err
}

type exePred string

// Executable requires the peer to run the executable at path, an absolute path (compared after
// filepath.Clean; symbolic links are not resolved: give the path the kernel reports, as
// /proc/PID/exe or proc_pidpath do).
func Executable(path string) Predicate { return exePred(path) }

func (p exePred) String() string     { return "executable == " + strconv.Quote(string(p)) }
func (p exePred) needsProcess() bool { return true }
func (p exePred) check(_ mach.AuditToken, proc *process) (string, error) {
	if proc.exe != filepath.Clean(string(p)) {
		return "executable " + strconv.Quote(proc.exe), ErrExecutableMismatch
	}
	return "", nil
}

type codePred struct {
	text string
	req  *codeRequirement // parsed by New
}

// CodeSigning requires the peer's code to satisfy a requirement in Apple's code-signing
// requirement language, e.g. `anchor apple generic and certificate leaf[subject.OU] = "TEAMID"`,
// `identifier "com.example.helper"` or `cdhash H"…"`. It is parsed by New (on macOS with
// SecRequirementCreateWithString); on other systems New refuses it (errors.ErrUnsupported).
func CodeSigning(requirement string) Predicate { return &codePred{text: requirement} }

func (p *codePred) String() string     { return "code signing " + strconv.Quote(p.text) }
func (p *codePred) needsProcess() bool { return true }
func (p *codePred) check(_ mach.AuditToken, proc *process) (string, error) {
	if proc.code == nil || p.req == nil {
		return "", fmt.Errorf("%w: %w", ErrCodeSigningFailed, errors.ErrUnsupported)
	}
	return "", proc.code.check(p.req)
}

// Requirement is a conjunction of predicates: a peer meets it when it meets them all. It is safe
// for many goroutines at once, and keeps a cache of the verdicts on the processes it has looked
// up (see the package doc), so share one Requirement rather than building it per peer.
type Requirement struct {
	token []Predicate // checked on the token at every message
	proc  []Predicate // checked on the process, cached
	sys   system
	codes []*codePred

	mu    sync.Mutex
	cache map[cacheKey]*CheckError // nil value: passed
}

// cacheKey names one process over time: its pid and its pid version (macOS) or start time (Linux).
type cacheKey struct {
	pid     int
	version uint64
}

// maxCache bounds the verdict cache; when full it is emptied (a peer is then looked up again).
const maxCache = 4096

// New makes a requirement of preds, all of which a peer must meet. At least one predicate is
// needed. A predicate that cannot be checked is an error wrapping ErrInvalidRequirement (or, for a
// code-signing requirement where there is no code signing, errors.ErrUnsupported).
func New(preds ...Predicate) (*Requirement, error) {
	sys := newHostSystem()
	r, err := newWith(sys, preds)
	if err != nil {
		sys.close()
		return nil, err
	}
	// Close is optional: a Requirement dropped unclosed releases its handles when collected.
	runtime.AddCleanup(r, func(sys system) { sys.close() }, sys)
	return r, nil
}

// Close releases what the requirement keeps open to make its checks cheap: on Linux a pidfd on
// each live process it has checked (at most 64). The requirement stays usable; later checks read
// the peer's start time from /proc instead. Calling it is optional (an unreachable Requirement
// releases them when collected), but a program (or a test's leak check) that counts its file
// descriptors should.
func (r *Requirement) Close() error {
	r.sys.close()
	return nil
}

func newWith(sys system, preds []Predicate) (*Requirement, error) {
	if len(preds) == 0 {
		return nil, fmt.Errorf("%w: no predicate", ErrInvalidRequirement)
	}
	r := &Requirement{sys: sys, cache: map[cacheKey]*CheckError{}}
	for _, p := range preds {
		switch p := p.(type) {
		case nil:
			return nil, fmt.Errorf("%w: a nil predicate", ErrInvalidRequirement)
		case idPred:
			if len(p.ids) == 0 {
				return nil, fmt.Errorf("%w: %s with no ids", ErrInvalidRequirement, p.what)
			}
		case exePred:
			if !filepath.IsAbs(string(p)) {
				return nil, fmt.Errorf("%w: executable %q is not an absolute path", ErrInvalidRequirement, string(p))
			}
		case *codePred:
			if strings.TrimSpace(p.text) == "" {
				return nil, fmt.Errorf("%w: empty code-signing requirement", ErrInvalidRequirement)
			}
			req, err := sys.parseCode(p.text)
			if err != nil {
				return nil, err
			}
			// A copy per Requirement: the parsed object belongs to it.
			cp := &codePred{text: p.text, req: req}
			r.codes = append(r.codes, cp)
			p = cp
			r.proc = append(r.proc, p)
			continue
		}
		if p.needsProcess() {
			r.proc = append(r.proc, p)
		} else {
			r.token = append(r.token, p)
		}
	}
	return r, nil
}

// String lists the predicates, joined by "and".
func (r *Requirement) String() string {
	var parts []string
	for _, p := range append(append([]Predicate{}, r.token...), r.proc...) {
		parts = append(parts, p.String())
	}
	return strings.Join(parts, " and ")
}

// Check reports whether the process that sent a message with audit token tok meets the
// requirement: nil, or a *CheckError naming the first predicate that failed. A kernel token
// (all zero) fails: the kernel is no peer.
func (r *Requirement) Check(tok mach.AuditToken) error {
	if tok.IsKernel() {
		return &CheckError{Predicate: r.String(), PID: 0, Err: ErrProcessGone}
	}
	for _, p := range r.token {
		if got, err := p.check(tok, nil); err != nil {
			return &CheckError{Predicate: p.String(), PID: tok.PID(), Got: got, Err: err}
		}
	}
	if len(r.proc) == 0 {
		return nil
	}
	version, err := r.sys.version(tok)
	if err != nil {
		return &CheckError{Predicate: r.proc[0].String(), PID: tok.PID(), Err: fmt.Errorf("%w: %w", ErrProcessGone, err)}
	}
	key := cacheKey{tok.PID(), version}
	r.mu.Lock()
	verdict, ok := r.cache[key]
	r.mu.Unlock()
	if ok {
		if verdict == nil {
			return nil
		}
		return verdict
	}
	verdict, cache := r.checkProcess(tok, version)
	if cache {
		r.mu.Lock()
		if len(r.cache) >= maxCache {
			clear(r.cache)
		}
		r.cache[key] = verdict
		r.mu.Unlock()
	}
	if verdict == nil {
		return nil
	}
	return verdict
}

// checkProcess looks the process up and checks the predicates that need it. cache is false when
// the look-up failed (the process is gone, or a transient error): that is no verdict on the
// process the key names.
func (r *Requirement) checkProcess(tok mach.AuditToken, version uint64) (verdict *CheckError, cache bool) {
	proc, err := r.sys.lookup(tok, version, len(r.codes) > 0)
	if err != nil {
		return &CheckError{Predicate: r.proc[0].String(), PID: tok.PID(), Err: fmt.Errorf("%w: %w", ErrProcessGone, err)}, false
	}
	if proc.code != nil {
		defer proc.code.close()
	}
	for _, p := range r.proc {
		if got, err := p.check(tok, proc); err != nil {
			return &CheckError{Predicate: p.String(), PID: tok.PID(), Got: got, Err: err}, !errors.Is(err, ErrProcessGone)
		}
	}
	return nil, true
}

// system is how a platform names and looks up processes: the host's (process_*.go), or a
// test's fake.
type system interface {
	// version returns what tells apart processes that had the token's pid: the pid version
	// (macOS) or the start time (Linux).
	version(tok mach.AuditToken) (uint64, error)
	// lookup returns the process the token names, which must still have version; with code set,
	// its code-signing check too.
	lookup(tok mach.AuditToken, version uint64, code bool) (*process, error)
	// parseCode parses a code-signing requirement.
	parseCode(text string) (*codeRequirement, error)
	// close releases what the system keeps open for the requirement.
	close()
}
