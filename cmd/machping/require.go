package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/machport/machport/peer"
)

// requireSyntax is the --require syntax, as the help texts give it (peer.Parse's).
const requireSyntax = `EXPR is predicates separated by ';', all of which the peer must meet: uid=501 (or
uid=0,501: one of them), gid=20, pid=123, exe=/absolute/path/of/the/executable, and on macOS
cs=<code-signing requirement> (e.g. cs=identifier "com.example.helper"; elsewhere refused).`

func init() {
	register(&command{
		name:    "check-peer",
		args:    "PID EXPR",
		summary: "check a process against a peer requirement, predicate by predicate",
		detail: `Reads the identity of process PID (on Linux from /proc: its users and groups, its
executable; on macOS its audit token, read once from its task with task_name_for_pid and
task_info, with the pid version that ties the executable and code-signing look-ups to that
process) and prints each predicate's verdict, for debugging the EXPR given to serve --require
or ping --require. ` + requireSyntax + `
The identity is read from the process, not from a message's audit trailer as serve and ping
check it. On macOS only root, the process itself and its own user may read its task.

Exit status: 0 every predicate passes, 1 one fails, 2 bad usage, an EXPR that does not parse,
no such process, or another failure; 4 this user may not read the process (a predicate could
not be checked: the verdicts are printed, that one failing with the permission error).`,
		examples: []string{
			"machping check-peer 4242 'uid=501; exe=/usr/local/libexec/helper'",
			"machping check-peer --json 4242 uid=0,501",
		},
		flags: checkPeerFlags,
	})
}

// checkPeerDoc is check-peer's JSON document.
type checkPeerDoc struct {
	header
	PID         int          `json:"pid"`
	UID         uint32       `json:"uid"` // the process's effective user
	GID         uint32       `json:"gid"` // its effective group
	Requirement string       `json:"requirement"`
	Verdicts    []verdictDoc `json:"verdicts"`
	Pass        bool         `json:"pass"`
	// NotPermitted: a predicate could not be checked because this user may not read the process
	// (its executable, on Linux, needs ptrace access to /proc/PID/exe): exit 4.
	NotPermitted bool `json:"not_permitted,omitempty"`
}

// verdictDoc is one predicate's verdict.
type verdictDoc struct {
	Predicate string `json:"predicate"`
	Pass      bool   `json:"pass"`
	Got       string `json:"got,omitempty"`   // what the process has, when it fails and that is known
	Error     string `json:"error,omitempty"` // why it fails
}

// parseRequire parses a --require or check-peer EXPR; a bad one is a usage error (exit 2).
func parseRequire(o *output, expr string) (*peer.Requirement, int, bool) {
	req, err := peer.Parse(expr)
	if err != nil {
		return nil, o.fail(diagnosis{Message: "bad requirement: " + err.Error(),
			Hints: []string{"'machping help " + o.command + "' gives the syntax"}}, exitError), false
	}
	return req, 0, true
}

// optionalRequire is parseRequire for a --require flag: no requirement when expr is empty.
func optionalRequire(o *output, expr string) (*peer.Requirement, int, bool) {
	if expr == "" {
		return nil, 0, true
	}
	return parseRequire(o, expr)
}

func checkPeerFlags(_ *flag.FlagSet, o *output) func(context.Context, []string) int {
	return func(ctx context.Context, args []string) int {
		if len(args) != 2 {
			return o.usageError("check-peer needs a PID and an EXPR, got %d arguments", len(args))
		}
		pid, err := strconv.Atoi(args[0])
		if err != nil || pid <= 0 {
			return o.usageError("PID must be a process id (positive), not %q", args[0])
		}
		req, code, ok := parseRequire(o, args[1])
		if !ok {
			return code
		}
		defer req.Close()
		tok, err := peer.TokenForPID(pid)
		if err != nil {
			cause := err
			switch {
			case errors.Is(err, fs.ErrNotExist):
				cause = errNoProcess
			case errors.Is(err, fs.ErrPermission):
				cause = errNotPermitted
			}
			d := diagnosis{Message: fmt.Sprintf("cannot read the identity of pid %d: %v", pid, cause), Cause: err.Error()}
			return o.fail(d, exitFor(cause))
		}
		doc := checkPeerDoc{header: newHeader("check-peer"), PID: pid, UID: tok.EUID(), GID: tok.EGID(),
			Requirement: req.Expr(), Verdicts: []verdictDoc{}, Pass: true}
		for _, v := range req.Explain(tok) {
			vd := verdictDoc{Predicate: v.Predicate, Pass: v.Err == nil}
			if v.Err != nil {
				doc.Pass = false
				vd.Error = v.Err.Error()
				doc.NotPermitted = doc.NotPermitted || errors.Is(v.Err, fs.ErrPermission)
				var ce *peer.CheckError
				if errors.As(v.Err, &ce) {
					vd.Got, vd.Error = ce.Got, ce.Err.Error()
				}
			}
			doc.Verdicts = append(doc.Verdicts, vd)
		}
		code = exitOK
		switch {
		case doc.NotPermitted:
			// No verdict on the process: it may meet the requirement.
			code = exitFor(errNotPermitted)
		case !doc.Pass:
			code = exitNegative
		}
		if o.json {
			return o.emit(doc, code)
		}
		o.printf("pid %d (uid %d, gid %d) against %s:\n", pid, doc.UID, doc.GID, doc.Requirement)
		failed := 0
		for _, v := range doc.Verdicts {
			if v.Pass {
				o.printf("  pass  %s\n", v.Predicate)
				continue
			}
			failed++
			got := ""
			if v.Got != "" {
				got = " (it has " + v.Got + ")"
			}
			o.printf("  FAIL  %s%s: %s\n", v.Predicate, got, v.Error)
		}
		if failed == 0 {
			o.printf("pid %d meets the requirement\n", pid)
		} else {
			o.printf("pid %d fails %d of %d predicates\n", pid, failed, len(doc.Verdicts))
		}
		if doc.NotPermitted {
			o.fail(diagnosis{Message: fmt.Sprintf("cannot check every predicate on pid %d: %v", pid, errNotPermitted),
				Hints: []string{permissionHint}}, code)
		}
		return code
	}
}
