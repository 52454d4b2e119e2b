package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/sandboxcheck"
)

// diagnosis explains a failure in words: what happened, launchd's or CF's code, and what to do.
type diagnosis struct {
	Message  string   `json:"message"`             // what failed, in one sentence
	Cause    string   `json:"cause,omitempty"`     // the library's error text
	Code     int      `json:"code,omitempty"`      // launchd's code (1100–1106) or CF's status (-1 to -5)
	CodeName string   `json:"code_name,omitempty"` // e.g. "BOOTSTRAP_UNKNOWN_SERVICE"
	Rule     string   `json:"rule,omitempty"`      // for a name that breaks a rule: the rule's text
	Groups   []string `json:"groups,omitempty"`    // for 1100: this process's application groups, when it has any
	Example  string   `json:"example,omitempty"`   // a name that would pass, when one can be built
	Hints    []string `json:"hints,omitempty"`

	notSandbox bool // a 1100 the sandbox did not cause: this process's groups are beside the point
}

func (d diagnosis) write(w io.Writer, prefix string) {
	fmt.Fprintf(w, "%s%s\n", prefix, d.Message)
	if d.Cause != "" && d.Cause != d.Message {
		fmt.Fprintf(w, "  cause: %s\n", d.Cause)
	}
	if d.Code == int(bootstrap.ErrNotPrivileged) && !d.notSandbox {
		groups := "none known (not sandboxed, or no application-group entitlement)"
		if len(d.Groups) > 0 {
			groups = strings.Join(d.Groups, ", ")
		}
		fmt.Fprintf(w, "  this process's application groups: %s\n", groups)
	}
	if d.Example != "" {
		fmt.Fprintf(w, "  a name that would pass: %s\n", d.Example)
	}
	for _, h := range d.Hints {
		fmt.Fprintf(w, "  hint: %s\n", h)
	}
}

// The app-group rule, as the diagnostics state it.
const appGroupRule = "in the App Sandbox a process may register only service names that begin with one of " +
	"its application-group identifiers and a period (<group-id>.<name>); launchd refuses any other name " +
	"with BOOTSTRAP_NOT_PRIVILEGED (1100)"

// errServerDied marks a ping that stopped because the service went away.
var errServerDied = errors.New("the server died")

// what names the operation that failed, for the message: "look up", "register", "ping".
func diagnose(err error, what, name string, pid int) diagnosis {
	d := diagnosis{Cause: err.Error()}
	var nameErr *sandboxcheck.NameError
	hasNameErr := errors.As(err, &nameErr)
	if hasNameErr {
		d.Rule, d.Example = nameErr.Detail, nameErr.Example
	}
	var be *bootstrap.Error
	var ce *cfmessageport.Error
	switch {
	case errors.As(err, &be) && be.Code != 0:
		d.Code, d.CodeName = int(be.Code), be.Code.Name()
	case errors.As(err, &ce) && ce.Status != 0:
		d.Code, d.CodeName = int(ce.Status), statusName(ce.Status)
	}
	target := name
	if pid != 0 {
		target = fmt.Sprintf("%s (per-PID service of pid %d)", name, pid)
	}
	switch {
	case hasNameErr && errors.Is(err, sandboxcheck.ErrBadGroup):
		// The process's own groups are malformed: no name could be checked against them.
		d.Message = fmt.Sprintf("cannot %s %s: this process's application group %q is malformed: %s", what, target, nameErr.Group, nameErr.Detail)
		d.Rule, d.Example = "", ""
		d.Code, d.CodeName = 0, "" // this process's own check failed; launchd was not asked
		d.Hints = append(d.Hints, "the groups come from "+sandboxcheck.GroupsSource())
	case errors.Is(err, bootstrap.ErrUnknownService):
		d.Message = fmt.Sprintf("cannot %s %s: unknown service (1102): nobody serves this name", what, target)
		start := "check that the server is running, or start one: " + shellCommand("serve", name)
		if pid != 0 {
			start = fmt.Sprintf("the server must register the name per-PID and run as pid %d: %s", pid, shellCommand("serve", "--pid", name))
		}
		d.Hints = append(d.Hints, "check the name: it must match the server's exactly, including case", start)
		if pid == 0 {
			d.Hints = append(d.Hints, "a per-PID service is found only with --pid and its server's pid")
		}
		d.Hints = append(d.Hints, namespaceHint())
	case errors.Is(err, bootstrap.ErrNotPrivileged):
		d.Message = fmt.Sprintf("cannot %s %s: not privileged (1100)", what, target)
		groups, _ := sandboxcheck.ApplicationGroups()
		switch {
		case hasNameErr:
			d.Message += ": the sandbox refuses this name"
			d.Groups = groups
			d.Hints = append(d.Hints, appGroupRule)
		case (what == "register" || what == "serve") && sandboxAllowsRegister(name):
			// The sandbox has said yes to this name, so the refusal is the owner's: talking about
			// the App Sandbox here would point the wrong way.
			d.Message += ": another process already serves this name (the sandbox allows registering it)"
			d.notSandbox = true
			d.Hints = append(d.Hints, "see whether it answers: "+shellCommand("lookup", name))
		case what == "register" || what == "serve":
			d.Message += ": another process already serves this name, or the sandbox refuses it"
			d.Groups = groups
			d.Hints = append(d.Hints, "see whether another process serves it: "+shellCommand("lookup", name), appGroupRule)
		default:
			d.Message += ": the sandbox does not allow this process to look the name up"
			d.Groups = groups
			d.Hints = append(d.Hints, "a sandboxed process may look up the names its profile allows (mach-lookup), "+
				"such as system services, names inside its application groups, and those its entitlements list as exceptions")
		}
	case errors.Is(err, bootstrap.ErrServiceActive):
		d.Message = fmt.Sprintf("cannot %s %s: this process already serves it (1103)", what, target)
	case hasNameErr:
		d.Message = fmt.Sprintf("cannot %s %q: %s", what, name, nameErr.Detail)
		d.Rule = ""
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		d.Message = fmt.Sprintf("cannot %s %s: timed out", what, target)
		d.Hints = append(d.Hints, "the server is alive but not answering: is its handler stuck, or its queue full?")
	case errors.Is(err, errServerDied), errors.Is(err, cfmessageport.ErrBecameInvalid):
		d.Message = fmt.Sprintf("%s: the server died (its port became a dead name)", target)
		d.Hints = append(d.Hints, "the service's process exited or was killed; restart it and look the name up again")
	default:
		d.Message = fmt.Sprintf("cannot %s %s: %v", what, target, err)
	}
	return d
}

func statusName(s cfmessageport.Status) string {
	if f := strings.Fields(s.Error()); len(f) == 2 {
		return f[1]
	}
	return ""
}

// sandboxAllowsRegister reports whether the sandbox answers yes for registering name: then a
// 1100 comes from the name's owner, not from the sandbox. No answer counts as no.
func sandboxAllowsRegister(name string) bool {
	ok, err := sandboxcheck.Allowed(sandboxcheck.MachRegister, name)
	return err == nil && ok
}
