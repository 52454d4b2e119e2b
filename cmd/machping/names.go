package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/sandboxcheck"
)

func init() {
	register(&command{
		name:    "lookup",
		args:    "[--pid PID] [-W timeout] NAME",
		summary: "tell whether a service name resolves, and what right came back",
		detail: `Looks NAME up (bootstrap_look_up, or bootstrap_look_up2 for the per-PID service of --pid)
and reports the send right it got, then releases it, and the pid of the process serving the
name where it can be known: on Linux from the emulated namespace's record; launchd does not
tell it ('machping ping' shows the replying server's pid on macOS too). Exit status 0 when the name resolves,
3 when no live server has it (1102), 4 when the sandbox refuses it (1100), 5 for an invalid
name, 2 on any other failure ('machping help' lists them).`,
		examples: []string{"machping lookup com.apple.windowserver.active", "machping lookup --pid 4242 com.example.echo"},
		flags:    lookupFlags,
	})
	register(&command{
		name:    "register",
		args:    "[--pid] NAME",
		summary: "tell whether this process may register a name (probes, then withdraws)",
		detail: `Probes check-in (bootstrap_check_in: launchd hands over a name a plist declares for this
process, and makes one nobody serves) and registration (bootstrap_register2) separately,
withdrawing the name after each success, and reports the sandbox's own answers for
mach-register and mach-lookup (on macOS from sandbox_check; on Linux from the emulated sandbox
of MACHPORT_APP_GROUPS). Exit status 0 when
the name may be registered, 4 when it is refused (1100 sandbox or another owner, 1101, 1103),
5 for an invalid name, 2 on other failures ('machping help' lists them).`,
		examples: []string{"machping register group.com.example.app.worker", "MACHPORT_APP_GROUPS=group.com.example.app machping register com.other.name"},
		flags:    registerFlags,
	})
	register(&command{
		name:    "check",
		args:    "[--group G]... NAME",
		summary: "check a name offline against the application-group rule",
		detail: `Validates NAME without asking launchd: non-empty, UTF-8, no NUL, at most 127 bytes, and inside one
of the application groups given with --group (or, without --group, this process's own groups),
explaining a refusal and suggesting a name that would pass. Also prints this process's
sandbox state and groups. Exit status 0 when the name is valid, 4 when it lies outside the
groups (the sandbox would refuse it with 1100), 5 when it breaks a rule every name follows,
2 when a group is malformed ('machping help' lists them).`,
		examples: []string{
			"machping check --group group.com.example.app group.com.example.app.worker",
			"machping check --group group.com.example.app com.example.worker",
		},
		flags: checkFlags,
	})
	register(&command{
		name:    "rights",
		args:    "[--lookup NAME] [--pid PID]",
		summary: "list a process's port names, rights and user references (and fds), for leak hunting",
		detail: `Lists every name in this process's IPC space with its right types (mach_port_names) and user
references (mach_port_get_refs, counted as lsmp's urefs), and its open file descriptors (on
Linux the emulation keeps ports behind descriptors). With --lookup, NAME is looked up first,
which shows the right a look-up adds. With --pid, another process's rights, as 'lsmp -p': on
macOS through task_for_pid (root, or a debugger's entitlement; never a platform binary); on
Linux from the table of names the process serves to its own user and root (the emulation keeps
it in the process's memory), with its descriptors and the service names it serves. Exit status 4
when this user may not inspect the process, 2 when there is no such process.`,
		examples: []string{"machping rights", "machping rights --lookup com.example.echo --json", "sudo machping rights --pid 4242"},
		flags:    rightsFlags,
	})
}

// rightInfo describes one name in the IPC space.
type rightInfo struct {
	Name  string `json:"name"`  // the port name, in hex ("0x1103")
	Type  string `json:"type"`  // its rights: "send", "receive+send", "dead-name", ...
	URefs uint32 `json:"urefs"` // user references, as lsmp counts them (see urefs)
}

func describeRight(n mach.Name) rightInfo {
	t, err := mach.TypeOf(n)
	if err != nil {
		return rightInfo{Name: fmt.Sprintf("%#x", uint32(n)), Type: "unknown"}
	}
	return ownRight(n, t)
}

// sandboxInfo is this process's sandbox state.
type sandboxInfo struct {
	Source    string   `json:"source"` // where the answers come from
	Sandboxed bool     `json:"sandboxed"`
	Groups    []string `json:"groups"` // application groups; [] when none
	Error     string   `json:"error,omitempty"`
}

func currentSandbox() sandboxInfo {
	info := sandboxInfo{Source: "the emulated sandbox (" + sandboxcheck.EnvAppGroups + ")", Groups: []string{}}
	if runtime.GOOS == "darwin" {
		info.Source = "the App Sandbox (sandbox_check, entitlements)"
	}
	var errs []string
	sandboxed, err := sandboxcheck.Sandboxed()
	if err != nil {
		errs = append(errs, err.Error())
	}
	info.Sandboxed = sandboxed
	groups, err := sandboxcheck.ApplicationGroups()
	if err != nil && !slices.Contains(errs, err.Error()) { // both fail alike on malformed groups
		errs = append(errs, err.Error())
	}
	if groups != nil {
		info.Groups = groups
	}
	info.Error = strings.Join(errs, "; ")
	return info
}

func (s sandboxInfo) print(o *output) {
	state := "not sandboxed"
	if s.Sandboxed {
		state = "sandboxed"
	}
	groups := "none"
	if len(s.Groups) > 0 {
		groups = strings.Join(s.Groups, ", ")
	}
	o.printf("this process: %s, application groups: %s (from %s)\n", state, groups, s.Source)
	if s.Error != "" {
		o.printf("  (sandbox state incomplete: %s)\n", s.Error)
	}
}

// lookupDoc is lookup's JSON document.
type lookupDoc struct {
	header
	Name    string     `json:"name"`
	PID     int        `json:"pid,omitempty"`
	Found   bool       `json:"found"`
	Right   *rightInfo `json:"right,omitempty"`
	Owner   int        `json:"owner_pid,omitempty"` // the serving process, where it can be known (Linux)
	Failure *diagnosis `json:"failure,omitempty"`
}

func lookupFlags(fs *flag.FlagSet, o *output) func(context.Context, []string) int {
	pid := fs.Int("pid", 0, "look up the per-PID service of process `PID`")
	timeout := durationFlag(fs, "W", 5*time.Second, "give up after `timeout`")
	return func(ctx context.Context, args []string) int {
		switch {
		case len(args) != 1:
			return o.usageError("lookup needs exactly one NAME, got %d arguments", len(args))
		case *timeout <= 0:
			return o.usageError("-W must be positive")
		case *pid < 0:
			return o.usageError("--pid must be a process id (positive)")
		}
		doc := lookupDoc{header: newHeader("lookup"), Name: args[0], PID: *pid}
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		right, err := lookUpRight(ctx, doc.Name, *pid)
		cancel()
		code := exitFor(err)
		if err != nil {
			d := diagnose(err, "look up", doc.Name, *pid)
			doc.Failure = &d
		} else {
			info := describeRight(right.Name())
			doc.Found, doc.Right = true, &info
			doc.Owner, _ = ownerPID(doc.Name, *pid)
			right.Close()
		}
		if code != exitOK && code != exitUnknown {
			return o.fail(*doc.Failure, code) // not a look-up's answer: an error document
		}
		if o.json {
			return o.emit(doc, code)
		}
		if doc.Found {
			o.printf("%s: found: send right %s (%s)\n", doc.Name, doc.Right.Name, doc.Right.Type)
			if doc.Owner != 0 {
				o.printf("  served by pid %d (%s)\n", doc.Owner, ownerPIDNote)
			} else {
				o.printf("  served by: unknown (%s)\n", ownerPIDNote)
			}
			return code
		}
		o.printf("%s: not found (1102 unknown service)\n", doc.Name)
		return o.fail(*doc.Failure, code)
	}
}

// registerDoc is register's JSON document.
type registerDoc struct {
	header
	Name          string          `json:"name"`
	PerPID        bool            `json:"per_pid"`
	Sandbox       sandboxInfo     `json:"sandbox"`
	SandboxAllows map[string]bool `json:"sandbox_allows"`     // "mach-register", "mach-lookup": the sandbox's answers
	CheckIn       *probe          `json:"check_in,omitempty"` // absent for per-PID names, which launchd never declares
	Register      probe           `json:"register"`
	MayRegister   bool            `json:"may_register"`
}

// probe is the outcome of one attempt to claim a name.
type probe struct {
	OK        bool       `json:"ok"`
	Withdrawn bool       `json:"withdrawn"` // the name was given back afterwards
	Failure   *diagnosis `json:"failure,omitempty"`

	err error // register's failure, for the exit status
}

func registerFlags(fs *flag.FlagSet, o *output) func(context.Context, []string) int {
	perPID := fs.Bool("pid", false, "probe the per-PID name of this process instead")
	return func(ctx context.Context, args []string) int {
		if len(args) != 1 {
			return o.usageError("register needs exactly one NAME, got %d arguments", len(args))
		}
		name := args[0]
		doc := registerDoc{header: newHeader("register"), Name: name, PerPID: *perPID, Sandbox: currentSandbox(),
			SandboxAllows: map[string]bool{}}
		allowed := sandboxcheck.Allowed
		if *perPID {
			allowed = sandboxcheck.AllowedPerPID
		}
		var sandboxErrs []string
		for _, op := range []sandboxcheck.Operation{sandboxcheck.MachRegister, sandboxcheck.MachLookUp} {
			ok, err := allowed(op, name)
			if err != nil {
				sandboxErrs = append(sandboxErrs, fmt.Sprintf("%s: %v", op, err))
				continue
			}
			doc.SandboxAllows[string(op)] = ok
		}
		if len(sandboxErrs) > 0 && doc.Sandbox.Error == "" {
			doc.Sandbox.Error = strings.Join(sandboxErrs, "; ")
		}

		if !*perPID {
			p := probeCheckIn(name)
			doc.CheckIn = &p
		}
		doc.Register = probeRegister(name, *perPID)
		doc.MayRegister = doc.Register.OK || (doc.CheckIn != nil && doc.CheckIn.OK)
		code := exitOK
		if !doc.MayRegister {
			code = exitFor(doc.Register.err)
		}
		if o.json {
			return o.emit(doc, code)
		}
		doc.Sandbox.print(o)
		for _, op := range []string{string(sandboxcheck.MachRegister), string(sandboxcheck.MachLookUp)} {
			if ok, known := doc.SandboxAllows[op]; known {
				o.printf("sandbox allows %s %s: %s\n", op, name, yesNo(ok))
			}
		}
		if doc.CheckIn != nil {
			o.printf("check-in (bootstrap_check_in): %s\n", doc.CheckIn.text())
		}
		o.printf("register (bootstrap_register2): %s\n", doc.Register.text())
		if doc.MayRegister {
			o.printf("%s: this process may register it\n", name)
		} else {
			o.printf("%s: this process may not register it\n", name)
			if f := doc.Register.Failure; f != nil {
				o.mu.Lock()
				f.write(o.stdout, "  ")
				o.mu.Unlock()
			}
		}
		return code
	}
}

func (p probe) text() string {
	switch {
	case p.OK && p.Withdrawn:
		return "ok, withdrawn again"
	case p.OK:
		return "ok, but withdrawing it failed"
	default:
		return "refused: " + p.Failure.Message
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func probeCheckIn(name string) probe {
	port, err := bootstrap.CheckIn(name)
	if err != nil {
		d := diagnose(err, "check in", name, 0)
		if errors.Is(err, bootstrap.ErrUnknownService) {
			d.Message = "no launchd job declares " + name + " for this process (1102), as expected unless a launchd plist lists it under MachServices"
			d.Hints = nil
		}
		return probe{Failure: &d}
	}
	// Destroying the checked-in right gives the name back to launchd, which keeps it declared.
	return probe{OK: true, Withdrawn: port.Close() == nil}
}

func probeRegister(name string, perPID bool) probe {
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		d := diagnose(err, "register", name, 0)
		return probe{Failure: &d, err: err}
	}
	reg, err := bootstrap.Register(name, port, &bootstrap.Options{PerPID: perPID})
	if err != nil {
		port.Close()
		d := diagnose(err, "register", name, 0)
		return probe{Failure: &d, err: err}
	}
	return probe{OK: true, Withdrawn: reg.Close() == nil}
}

// checkDoc is check's JSON document.
type checkDoc struct {
	header
	Name       string      `json:"name"`
	Groups     []string    `json:"groups"`      // the groups the name was checked against
	GroupsFrom string      `json:"groups_from"` // "flags", "process" or "none"
	Valid      bool        `json:"valid"`
	Rule       string      `json:"rule,omitempty"`   // the broken rule's identifier (see 'help json')
	Detail     string      `json:"detail,omitempty"` // what exactly is wrong
	Example    string      `json:"example,omitempty"`
	Sandbox    sandboxInfo `json:"sandbox"`
}

// ruleIDs are check's stable identifiers of sandboxcheck's rules.
var ruleIDs = []struct {
	err error
	id  string
}{
	{sandboxcheck.ErrEmptyName, "empty"},
	{sandboxcheck.ErrInvalidUTF8, "invalid-utf8"},
	{sandboxcheck.ErrNameHasNUL, "nul"},
	{sandboxcheck.ErrNameTooLong, "too-long"},
	{sandboxcheck.ErrOutsideGroups, "outside-groups"},
	{sandboxcheck.ErrEmptyRest, "empty-rest"},
	{sandboxcheck.ErrBadGroup, "bad-group"},
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

func checkFlags(fs *flag.FlagSet, o *output) func(context.Context, []string) int {
	var groups stringList
	fs.Var(&groups, "group", "an application-group `identifier` to check against (repeatable)")
	return func(ctx context.Context, args []string) int {
		if len(args) != 1 {
			return o.usageError("check needs exactly one NAME, got %d arguments", len(args))
		}
		doc := checkDoc{header: newHeader("check"), Name: args[0], Groups: []string(groups), GroupsFrom: "flags",
			Sandbox: currentSandbox()}
		var groupsErr error // this process's groups could not be read
		if len(groups) == 0 {
			doc.Groups, doc.GroupsFrom = doc.Sandbox.Groups, "process"
			if len(doc.Groups) == 0 {
				doc.GroupsFrom = "none"
			}
			_, groupsErr = sandboxcheck.ApplicationGroups()
		}
		err := sandboxcheck.ValidateName(doc.Name, doc.Groups...)
		if err == nil && groupsErr != nil {
			// Malformed groups of this process's own: no answer, as register gives none, rather
			// than "valid" against no groups at all.
			err = groupsErr
		}
		doc.Valid = err == nil
		var nameErr *sandboxcheck.NameError
		if errors.As(err, &nameErr) {
			doc.Detail, doc.Example = nameErr.Detail, nameErr.Example
			for _, r := range ruleIDs {
				if errors.Is(err, r.err) {
					doc.Rule = r.id
				}
			}
		} else if err != nil {
			doc.Detail = err.Error()
		}
		code := exitFor(err)
		if o.json {
			return o.emit(doc, code)
		}
		against := "no application groups (only the rules every name follows)"
		switch doc.GroupsFrom {
		case "flags":
			against = "groups " + strings.Join(doc.Groups, ", ")
		case "process":
			against = "this process's groups " + strings.Join(doc.Groups, ", ")
		}
		switch {
		case doc.Valid:
			o.printf("%s: valid (checked against %s)\n", doc.Name, against)
		case doc.Rule == "bad-group":
			// Not the name's fault: no name can be checked against a malformed group.
			o.printf("%s: cannot be checked: application group %q is malformed: %s\n", doc.Name, nameErr.Group, doc.Detail)
			if doc.GroupsFrom != "flags" {
				o.printf("  hint: this process's groups come from %s\n", sandboxcheck.GroupsSource())
			}
		default:
			o.printf("%s: invalid (checked against %s)\n", doc.Name, against)
			o.printf("  rule: %s: %s\n", doc.Rule, doc.Detail)
			if doc.Example != "" {
				o.printf("  a name that would pass: %s\n", doc.Example)
			}
			if doc.Rule == "outside-groups" || doc.Rule == "empty-rest" {
				o.printf("  the app-group rule: %s\n", appGroupRule)
			}
		}
		doc.Sandbox.print(o)
		return code
	}
}

// rightsDoc is rights's JSON document.
type rightsDoc struct {
	header
	PID      int         `json:"pid"`
	Self     bool        `json:"self"` // pid is this process
	IPC      string      `json:"ipc"`
	Lookup   *lookupDoc  `json:"lookup,omitempty"` // with --lookup
	Names    []rightInfo `json:"names"`
	Complete bool        `json:"names_complete"`           // names lists the whole IPC space
	Why      string      `json:"why_incomplete,omitempty"` // when not: why, and what is shown instead
	Services []string    `json:"services,omitempty"`       // another process's served names, where known
	FDs      []fdInfo    `json:"fds"`
}

// fdInfo is one open file descriptor.
type fdInfo struct {
	FD     int    `json:"fd"`
	Target string `json:"target,omitempty"` // what it refers to, where the system says
}

func rightsFlags(fs *flag.FlagSet, o *output) func(context.Context, []string) int {
	lookup := fs.String("lookup", "", "look `NAME` up first and hold its right while listing")
	pid := fs.Int("pid", 0, "list the rights of process `PID` instead (lsmp -p)")
	return func(ctx context.Context, args []string) int {
		switch {
		case len(args) != 0:
			return o.usageError("rights takes no arguments besides its flags")
		case *pid < 0:
			return o.usageError("--pid must be a process id (positive)")
		case *pid != 0 && *pid != osGetpid() && *lookup != "":
			return o.usageError("--lookup holds a right in this process; it does not go with --pid of another")
		}
		doc := rightsDoc{header: newHeader("rights"), PID: osGetpid(), Self: true, IPC: ipcBackend(), Names: []rightInfo{}}
		if *pid != 0 && *pid != doc.PID {
			return peerRights(o, doc, *pid)
		}
		if *lookup != "" {
			lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			right, err := lookUpRight(lctx, *lookup, 0)
			cancel()
			if err != nil {
				return o.fail(diagnose(err, "look up", *lookup, 0), exitFor(err))
			}
			defer right.Close()
			info := describeRight(right.Name())
			doc.Lookup = &lookupDoc{header: newHeader("lookup"), Name: *lookup, Found: true, Right: &info}
		}
		names, err := mach.Names()
		if err != nil {
			return o.fail(diagnosis{Message: "cannot list port names", Cause: err.Error()}, exitError)
		}
		for _, n := range names {
			doc.Names = append(doc.Names, ownRight(n.Name, n.Type))
		}
		doc.Complete = true
		doc.FDs = openFDs()
		if o.json {
			return o.emit(doc, exitOK)
		}
		if doc.Lookup != nil {
			o.printf("looked up %s: send right %s\n", *lookup, doc.Lookup.Right.Name)
		}
		doc.print(o)
		return exitOK
	}
}

// peerRights lists what can be known of process pid's rights (rights --pid).
func peerRights(o *output, doc rightsDoc, pid int) int {
	doc.PID, doc.Self = pid, false
	p, err := inspectPeer(pid)
	if err != nil {
		d := diagnosis{Message: fmt.Sprintf("cannot list the rights of pid %d: %v", pid, err)}
		if errors.Is(err, errNotPermitted) {
			d.Hints = []string{permissionHint}
		}
		return o.fail(d, exitFor(err))
	}
	doc.Complete, doc.Why, doc.Services, doc.FDs = p.namesKnown, p.why, p.services, p.fds
	if p.names != nil {
		doc.Names = p.names
	}
	if o.json {
		return o.emit(doc, exitOK)
	}
	doc.print(o)
	return exitOK
}

func (doc rightsDoc) print(o *output) {
	if doc.Complete {
		o.printf("port names of pid %d (%s): %d\n", doc.PID, doc.IPC, len(doc.Names))
		o.printf("  %-10s %-22s %s\n", "name", "rights", "urefs")
		for _, n := range doc.Names {
			o.printf("  %-10s %-22s %d\n", n.Name, n.Type, n.URefs)
		}
	} else {
		o.printf("port names of pid %d (%s): not readable\n  %s\n", doc.PID, doc.IPC, doc.Why)
	}
	if !doc.Self && doc.Services != nil {
		o.printf("services it serves: %d\n", len(doc.Services))
		for _, s := range doc.Services {
			o.printf("  %s\n", s)
		}
	}
	o.printf("file descriptors: %d\n", len(doc.FDs))
	for _, f := range doc.FDs {
		o.printf("  %-4d %s\n", f.FD, f.Target)
	}
}
