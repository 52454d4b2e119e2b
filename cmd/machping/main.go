package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/sandboxcheck"
)

// version is machping's release; the module version and VCS revision, when the build records
// them, are reported next to it.
const version = "0.1.0"

// Exit statuses. 0, 1 and 2 are ping(8)'s; 3 to 5 name why a name is of no use. One cause
// gives one status in every command that meets it (lookup, ping, check, register, serve, rights):
// they all take it from exitFor.
const (
	exitOK       = 0 // yes: every reply came, the name resolves, may be registered, is valid
	exitNegative = 1 // no reply: ping lost replies or its server died mid-run; the self-test failed
	exitError    = 2 // no answer: bad usage, malformed application groups, interrupted, other failures
	exitUnknown  = 3 // unknown service: no live server has the name (1102)
	exitRefused  = 4 // refused: the sandbox refuses the name (1100), or another owner has it (1100, 1101, 1103); not permitted to inspect a process; the server fails ping --require
	exitInvalid  = 5 // invalid name: a rule every name follows is broken
)

// exitTable is what each status means, as 'machping help' prints it, and the sentinels of the
// causes that give it (a sandbox refusal matches both launchd's 1100 and the sandboxcheck rule
// that predicted it, both in the same row).
var exitTable = []struct {
	status  int
	meaning string // lines after the first start with 5 spaces, under the first's text
	causes  []error
}{
	{exitOK, "yes: every reply came, the name resolves, it may be registered, it is valid", nil},
	{exitNegative, "no reply: ping lost replies or its server died mid-run; the self-test failed", nil},
	// Every cause not listed below, sandboxcheck.ErrBadGroup among them: with malformed groups
	// no name can be checked.
	{exitError, "no answer: bad usage, malformed application groups, Ctrl-C, any other failure", nil},
	{exitUnknown, "unknown service (1102): no live server has the name: nobody registered it,\n" +
		"     it was withdrawn, or its server is gone",
		[]error{bootstrap.ErrUnknownService}},
	{exitRefused, "refused (1100, 1101, 1103): the sandbox refuses the name (check: it lies outside\n" +
		"     the application groups), or another process has it, or this one already serves it;\n" +
		"     rights --pid, check-peer: this user may not inspect the process;\n" +
		"     ping --require: the server fails the requirement (an impostor may have the name)",
		[]error{bootstrap.ErrNotPrivileged, bootstrap.ErrNameInUse, bootstrap.ErrServiceActive,
			sandboxcheck.ErrOutsideGroups, sandboxcheck.ErrEmptyRest, errNotPermitted, cfmessageport.ErrPeerRejected}},
	{exitInvalid, "invalid name: empty, not UTF-8, holding a NUL, or longer than 127 bytes",
		[]error{sandboxcheck.ErrEmptyName, sandboxcheck.ErrInvalidUTF8, sandboxcheck.ErrNameHasNUL, sandboxcheck.ErrNameTooLong}},
}

// exitFor is the exit status of a command that failed with err, by err's cause: exitOK for nil,
// exitError for a cause outside exitTable.
func exitFor(err error) int {
	if err == nil {
		return exitOK
	}
	for _, row := range exitTable {
		for _, cause := range row.causes {
			if errors.Is(err, cause) {
				return row.status
			}
		}
	}
	return exitError
}

// A command is one of machping's subcommands.
type command struct {
	name     string
	args     string // the usage line after the command's name
	summary  string
	detail   string   // a paragraph for the command's --help
	examples []string // each a full command line
	hidden   bool     // internal: started by machping itself
	// flagsFirst: the flags end at the first positional argument (exec's command has its own).
	flagsFirst bool
	// flags declares the command's flags on fs and returns its runner, which gets the positional
	// arguments.
	flags func(fs *flag.FlagSet, o *output) func(ctx context.Context, args []string) int
}

var commands []*command // filled by each command's file, in init

func register(c *command) { commands = append(commands, c) }

func lookupCommand(name string) *command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first Ctrl-C ends the command gracefully; a second one kills machping as usual.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is machping with its arguments (without the program name) and its outputs; it returns the
// exit code. ctx ends on Ctrl-C or SIGTERM.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o := &output{stdout: stdout, stderr: stderr}
	top := flag.NewFlagSet("machping", flag.ContinueOnError)
	top.SetOutput(io.Discard) // its errors are printed below, with machping's name
	top.BoolVar(&o.json, "json", false, "print one JSON document (see 'machping help json')")
	showVersion := top.Bool("version", false, "print the version and exit")
	// flag calls Usage both for -help and after its own error message; help goes to stdout once,
	// and an error gets a one-line pointer instead of the whole text.
	top.Usage = func() {}
	args, err := normalizeArgs(top, args, true)
	if err == nil {
		err = top.Parse(args)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return exitOK
		}
		fmt.Fprintf(stderr, "machping: %v\n  hint: 'machping help' shows the usage\n", err)
		return exitError
	}
	if *showVersion {
		return printVersion(o)
	}
	args = top.Args()
	name := "selftest"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		return help(o, args)
	}
	c := lookupCommand(name)
	if c == nil {
		fmt.Fprintf(stderr, "machping: unknown command %q; 'machping help' lists the commands\n", name)
		return exitError
	}
	fs := flag.NewFlagSet("machping "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // its errors are printed below, with machping's name
	fs.BoolVar(&o.json, "json", o.json, "print JSON (see 'machping help json')")
	runCmd := c.flags(fs, o)
	fs.Usage = func() {}
	var positional []string
	if c.flagsFirst {
		if args, err = normalizeArgs(fs, args, true); err == nil {
			err = fs.Parse(args)
			positional = fs.Args()
		}
	} else {
		positional, err = parseInterspersed(fs, args)
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandUsage(stdout, c, fs)
			return exitOK
		}
		fmt.Fprintf(stderr, "machping: %v\n  hint: 'machping help %s' shows the usage\n", err, c.name)
		return exitError
	}
	o.command = c.name
	return runCmd(ctx, positional)
}

// parseInterspersed parses flags wherever they appear among the positional arguments, so that
// "machping ping NAME -c 3" works as well as "machping ping -c 3 NAME". "--" ends the flags.
// ping(8)'s attached values ("-c3") are accepted too (see normalizeArgs).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	args, err := normalizeArgs(fs, args, false)
	if err != nil {
		return nil, err
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// flag stops at the first non-flag, or after "--": then everything left is positional.
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// versionInfo is the JSON shape of --version.
type versionInfo struct {
	header
	Version  string `json:"version"`
	Module   string `json:"module,omitempty"`
	Revision string `json:"revision,omitempty"`
	Go       string `json:"go"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	IPC      string `json:"ipc"`
}

func printVersion(o *output) int {
	v := versionInfo{header: newHeader("version"), Version: version, Go: runtime.Version(), OS: runtime.GOOS,
		Arch: runtime.GOARCH, IPC: ipcBackend()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Module = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Revision = s.Value[:min(len(s.Value), 12)]
			}
		}
	}
	if o.json {
		return o.emit(v, exitOK)
	}
	line := fmt.Sprintf("machping %s", v.Version)
	if v.Revision != "" {
		line += " (" + v.Revision + ")"
	}
	fmt.Fprintf(o.stdout, "%s %s %s/%s, %s\n", line, v.Go, v.OS, v.Arch, v.IPC)
	return exitOK
}

// ipcBackend says what carries Mach messages here.
func ipcBackend() string {
	if runtime.GOOS == "darwin" {
		return "Mach (xnu)"
	}
	return "machport's Linux emulation of Mach IPC"
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `machping %s: diagnose Mach services (launchd names, CFMessagePort, raw mach_msg)

usage: machping [--json] [command] [arguments]

With no command, machping runs a self-test: it starts an echo service in a child process,
pings it across processes and checks that the name goes away with the service.

Commands:
`, version)
	for _, c := range commands {
		if !c.hidden {
			fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprint(w, `  help      help about a command, or 'help json' for the JSON shapes

Flags:
  --json     print one JSON document instead of text (serve: one JSON object per line)
  --version  print the version
  --help     print this help

Exit status: the same cause gives the same status in lookup, ping, check, register, serve, rights
and check-peer.
`)
	for _, row := range exitTable {
		fmt.Fprintf(w, "  %d  %s\n", row.status, row.meaning)
	}
	fmt.Fprint(w, `  selftest exits 0, 1 or 2; serve 0 once it has withdrawn its name, 2 when it cannot
  serve; bench 0 or 2; check-peer 0 when the process meets the requirement, 1 when it fails
  it, 2 for a bad requirement or no such process.

Examples:
  machping
  machping serve com.example.echo
  machping ping -c 5 com.example.echo
  machping check --group group.com.example.app group.com.example.app.worker
  machping bench
`)
}

func commandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "usage: machping %s %s\n\n%s\n", c.name, c.args, c.summary)
	if c.detail != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.detail))
	}
	fmt.Fprintf(w, "\nFlags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	if len(c.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

func help(o *output, args []string) int {
	switch {
	case len(args) == 0:
		usage(o.stdout)
		return exitOK
	case args[0] == "json":
		fmt.Fprint(o.stdout, jsonHelp)
		return exitOK
	}
	c := lookupCommand(args[0])
	if c == nil {
		fmt.Fprintf(o.stderr, "machping: no help for %q\n", args[0])
		return exitError
	}
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.Bool("json", false, "print JSON (see 'machping help json')")
	c.flags(fs, o)
	commandUsage(o.stdout, c, fs)
	return exitOK
}
