package bootstrap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/machport/machport/mach"
	"github.com/machport/machport/sandboxcheck"
)

// EnvDir names the environment variable that overrides the directory of the Linux emulation's
// namespace (launchd has no such thing). Processes that should see each other's names must agree
// on it; tests use it for isolation.
const EnvDir = "MACHPORT_BOOTSTRAP_DIR"

// Options tune Register.
type Options struct {
	// PerPID registers a per-process service (BOOTSTRAP_PER_PID_SERVICE): it does not collide
	// with other processes' names and is found with LookUpPID and this process's pid.
	PerPID bool
}

// Registration is a name published by Register. It owns the receive right: Close destroys the
// right, which is what withdraws the name (launchd drops a name when its port dies).
type Registration struct {
	name   string
	pid    int
	port   *mach.ReceiveRight
	closer func() error

	once sync.Once
	err  error
}

// Name returns the registered service name.
func (r *Registration) Name() string { return r.name }

// PID returns this process's pid for a per-PID registration, and 0 for a global one.
func (r *Registration) PID() int { return r.pid }

// Port returns the registered receive right, to receive requests on. Registration owns it: do
// not close it yourself (that withdraws the name as well, but leaves the Registration open).
func (r *Registration) Port() *mach.ReceiveRight { return r.port }

// Close withdraws the name and destroys the receive right. Safe to call more than once. On
// macOS launchd notices the port's death asynchronously, so a look-up racing Close may still
// succeed and get a right that is already dead.
func (r *Registration) Close() error {
	r.once.Do(func() {
		// The port goes first: a namespace that watches it (the Linux emulation's, with a
		// dead-name request on a send right of its own) then hears of its death while it still
		// receives, and releases the notification's reference; withdrawn the other way round,
		// a send right to the port that outlives the namespace's (a look-up from this process)
		// would be left a dead-name reference nobody can release.
		err := r.port.Close()
		if cerr := r.closer(); err == nil {
			err = cerr
		}
		r.err = err
	})
	return r.err
}

// Register publishes port under name (bootstrap_register2) and takes ownership of it: the
// returned Registration's Close withdraws the name. On failure port stays the caller's.
//
// When this process is sandboxed with known application groups, the name is checked against
// them first: a name outside them fails with an *Error wrapping ErrNotPrivileged and the
// *sandboxcheck.NameError that says which rule broke (unless the real sandbox allows the name
// anyway, through a temporary-exception entitlement). A name another process owns fails with
// ErrNotPrivileged; one this process already serves with ErrServiceActive. opts may be nil.
func Register(name string, port *mach.ReceiveRight, opts *Options) (*Registration, error) {
	if opts == nil {
		opts = &Options{}
	}
	op := opRegister
	pid := 0
	scope := sandboxcheck.GlobalName
	if opts.PerPID {
		pid, scope = os.Getpid(), sandboxcheck.PerPIDName
	}
	if port == nil || !port.Name().Valid() {
		return nil, &Error{Op: op, Name: name, PID: pid, Err: fmt.Errorf("no receive right: %w", mach.KernInvalidArgument)}
	}
	if err := precheck(op, sandboxcheck.MachRegister, scope, name, pid); err != nil {
		return nil, err
	}
	closer, err := ns.register(name, port, opts.PerPID)
	if err != nil {
		return nil, err
	}
	return &Registration{name: name, pid: pid, port: port, closer: closer}, nil
}

// uniqueAttempts bounds RegisterUnique's retries; with 64 random bits a second attempt is
// already a sign of something other than a collision.
const uniqueAttempts = 4

// RegisterUnique registers port under "<prefix>.<16 random hex digits>". When this process is
// sandboxed and prefix does not already start with one of its application groups, the first
// group is put in front ("<group>.<prefix>.<random>"), so that the sandbox allows the name.
//
// It tries another suffix only when launchd says the name is taken: ErrNotPrivileged (1100)
// without a broken rule of the application groups, ErrNameInUse (1101) or ErrServiceActive
// (1103), at most 4 names in all. Any other failure ends it at once with that failure, launchd's
// unexpected codes (ErrUnexpectedCode) included: launchd refuses every name of a process outside
// a GUI login session, so another suffix would meet the same answer. It is exactly as strict as
// Register: when the application groups cannot be read, the prefix stays as given and launchd
// decides.
func RegisterUnique(prefix string, port *mach.ReceiveRight, opts *Options) (*Registration, error) {
	prefix, err := groupPrefixed(prefix)
	if err != nil {
		return nil, err
	}
	var last error
	for range uniqueAttempts {
		name := randomSuffix()
		if prefix != "" {
			name = prefix + "." + name
		}
		reg, err := Register(name, port, opts)
		if err == nil {
			return reg, nil
		}
		last = err
		var be *Error
		var rule *sandboxcheck.NameError
		if !errors.As(err, &be) || errors.As(err, &rule) ||
			(be.Code != ErrNotPrivileged && be.Code != ErrNameInUse && be.Code != ErrServiceActive) {
			return nil, err // not a collision: another suffix will not help
		}
	}
	return nil, last
}

// randomSuffix makes RegisterUnique's 16 hex digits (a variable so that a test can force a
// collision).
var randomSuffix = func() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// groupPrefixed puts this process's first application group in front of prefix when the
// sandbox needs one. It is exactly as strict as Register's check (sandboxcheck.Check): groups
// that cannot be read (csops or SecTask failing, a malformed entitlements blob) leave prefix as
// it is and launchd decides; only a malformed group the process declares is refused.
func groupPrefixed(prefix string) (string, error) {
	sandboxed, err := sandboxcheck.Sandboxed()
	if err != nil || !sandboxed {
		return prefix, nil
	}
	groups, err := sandboxcheck.ApplicationGroups()
	if err != nil {
		var bad *sandboxcheck.NameError
		if errors.As(err, &bad) {
			return "", err // a malformed declared group: Register refuses it too
		}
		return prefix, nil
	}
	for _, g := range groups {
		if prefix == g || sandboxcheck.HasGroupPrefix(prefix, g) {
			return prefix, nil
		}
	}
	if len(groups) == 0 {
		return prefix, nil
	}
	if prefix == "" {
		return groups[0], nil
	}
	return groups[0] + "." + prefix, nil
}

// CheckIn claims the receive right of name with bootstrap_check_in. When a launchd job declares
// the name for this process (a MachServices entry in its plist), launchd hands over that
// service's receive right. When nobody serves the name, launchd makes it a new service of this
// process and returns its receive right: job_mig_check_in2 with flags 0 (launchd-842
// src/core.c), which crashpad's util/mach/bootstrap_test.cc confirms on real launchd. The
// sandbox's mach-register check comes first, so a sandboxed process gets ErrNotPrivileged (1100)
// for a name outside its application groups, with the *sandboxcheck.NameError that says so, as
// Register does. A name this process serves already gives ErrServiceActive (1103), one another
// process serves ErrNotPrivileged (1100). The name goes with the receive right, as a registered
// name goes with its port; there is no Registration to close. On Linux no plist declares names,
// so CheckIn makes the service.
//
// cfmessageport.Listen, like CoreFoundation's CFMessagePortCreateLocal, checks a name in before
// it registers one, so a name it serves comes from CheckIn: same refusals, same lifetime.
func CheckIn(name string) (*mach.ReceiveRight, error) {
	if err := precheck(opCheckIn, sandboxcheck.MachRegister, sandboxcheck.GlobalName, name, 0); err != nil {
		return nil, err
	}
	return ns.checkIn(name)
}

// LookUp returns a send right to the service registered under name (bootstrap_look_up).
//
// One cause gives one error. When no live server has the name (nobody registered it, it was
// withdrawn, or its server was killed), LookUp fails with ErrUnknownService, also when the
// right the look-up gave is already dead. When the sandbox refuses the name, it fails with
// ErrNotPrivileged and, if the name lies outside this process's application groups, the
// *sandboxcheck.NameError that says so (ErrOutsideGroups or ErrEmptyRest). An invalid name
// (empty, not UTF-8, with a NUL, longer than sandboxcheck.MaxNameLen) fails with the
// *sandboxcheck.NameError of its rule alone, without asking launchd.
func LookUp(ctx context.Context, name string) (*mach.SendRight, error) {
	return lookUp(ctx, name, 0)
}

// LookUpPID returns a send right to the per-PID service name of process pid
// (bootstrap_look_up2 with BOOTSTRAP_PER_PID_SERVICE).
func LookUpPID(ctx context.Context, name string, pid int) (*mach.SendRight, error) {
	if pid <= 0 {
		return nil, &Error{Op: opLookUp2, Name: name, PID: pid, Err: fmt.Errorf("pid %d: %w", pid, mach.KernInvalidArgument)}
	}
	return lookUp(ctx, name, pid)
}

func lookUp(ctx context.Context, name string, pid int) (*mach.SendRight, error) {
	op, scope := opLookUp, sandboxcheck.GlobalName
	if pid != 0 {
		op, scope = opLookUp2, sandboxcheck.PerPIDName
	}
	if err := precheck(op, sandboxcheck.MachLookUp, scope, name, pid); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Op: op, Name: name, PID: pid, Err: err}
	}
	s, err := ns.lookUp(ctx, op, name, pid)
	if err != nil {
		return nil, err
	}
	if deadRight(s) {
		return nil, &Error{Op: op, Name: name, PID: pid, Code: ErrUnknownService, Err: errServerGone}
	}
	return s, nil
}

// errServerGone explains a 1102 that the look-up's own answer did not give: the right it gave
// was already dead.
var errServerGone = errors.New("the right the look-up gave is a dead name: its server is gone")

// deadRight reports whether a right that a look-up gave is already dead, and if so releases it.
// launchd learns of a registrant's death asynchronously, from the dead-name notification it
// asked for, and until then answers a look-up with the right it holds. If the port died before
// the reply reached this process, the reply carries MACH_PORT_DEAD (xnu's
// ipc_kmsg_copyout_object, ipc_kmsg.c, copies out a dead or inactive port as MACH_PORT_DEAD); if
// it died just after, the name the reply gave is a dead name. Either way no live server has the
// name. (Registration.Close destroys the port at once, so a look-up racing it ends here too.)
func deadRight(s *mach.SendRight) bool {
	n := s.Name()
	if n == mach.NameDead {
		return true
	}
	if t, err := mach.TypeOf(n); err != nil || !t.Has(mach.TypeDeadName) {
		return false
	}
	_ = s.Close()
	return true
}

// precheck refuses, before launchd is asked, a malformed name and one outside this process's
// application groups; the latter only if the sandbox itself does not allow it, because a
// temporary-exception entitlement can allow names outside the groups.
func precheck(op string, sop sandboxcheck.Operation, scope sandboxcheck.Scope, name string, pid int) error {
	err := sandboxcheck.Check(sop, name)
	if err == nil {
		return nil
	}
	var ne *sandboxcheck.NameError
	if errors.As(err, &ne) && (errors.Is(err, sandboxcheck.ErrOutsideGroups) || errors.Is(err, sandboxcheck.ErrEmptyRest)) {
		if ok, aerr := sandboxcheck.AllowedIn(sop, scope, name); aerr == nil && ok {
			return nil
		}
		return &Error{Op: op, Name: name, PID: pid, Code: ErrNotPrivileged, Err: err}
	}
	return &Error{Op: op, Name: name, PID: pid, Err: err}
}

// namespace is the platform seam: launchd on macOS, the daemonless emulation on Linux.
type namespace interface {
	// register publishes port; the returned func withdraws the name (the caller then destroys
	// the port).
	register(name string, port *mach.ReceiveRight, perPID bool) (func() error, error)
	checkIn(name string) (*mach.ReceiveRight, error)
	lookUp(ctx context.Context, op, name string, pid int) (*mach.SendRight, error)
}
