package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"
)

// errUnknownFlag is a flag the command does not define; the error names it as it was typed.
var errUnknownFlag = errors.New("unknown flag")

// normalizeArgs rewrites ping(8)'s attached short-flag values ("-c1", "-i0.2", "-W2") into the
// two arguments package flag reads ("-c", "1"), and reports a flag fs does not define as it was
// typed ("--bogus"), where package flag would say "-bogus". Everything after "--" is left alone,
// as is a value that follows a flag that takes one ("-s -1"). With stopAtArg, normalising ends
// at the first positional argument: the top level's flags end at the command's name.
//
// A hand-written pass instead of pflag or cobra: the only gap in package flag is the attached
// value of a one-letter flag, which this closes in one loop over fs's own definitions, so the
// commands, their help and the generated man page and completions keep one source (command and
// flag.FlagSet), and the module gains no dependency.
func normalizeArgs(fs *flag.FlagSet, args []string, stopAtArg bool) ([]string, error) {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" || arg == "-" || !strings.HasPrefix(arg, "-") {
			if arg == "--" || stopAtArg {
				return append(out, args[i:]...), nil
			}
			out = append(out, arg)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if f := fs.Lookup(name); f != nil || name == "h" || name == "help" {
			out = append(out, arg)
			if f != nil && !hasValue && !isBoolFlag(f) && i+1 < len(args) {
				i++ // the flag's value, even one that starts with "-"
				out = append(out, args[i])
			}
			continue
		}
		// "-c1": a one-letter flag that takes a value, with the value attached.
		if !strings.HasPrefix(arg, "--") {
			if f := fs.Lookup(arg[1:2]); f != nil && !isBoolFlag(f) {
				out = append(out, arg[:2], arg[2:])
				continue
			}
		}
		shown, _, _ := strings.Cut(arg, "=")
		return nil, fmt.Errorf("%w %s", errUnknownFlag, shown)
	}
	return out, nil
}

// isBoolFlag reports whether f takes no value, as package flag decides it.
func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
