// Command benchreport reads the output of .ci/bench (three interleaved `go test -bench` runs of
// issue 18's benchmarks, and the -v output of its scale tests) and prints the Targets
// table: per row, the median of the runs, the baseline's median from the same runs, their ratio,
// the lowest and highest of the rounds (each round's ratio to its own baseline), and the target
// with met or missed. Below it, without targets, the same ratios with both
// processes on one vCPU (the OneCPU runs), which set aside where the kernel places them.
//
// Usage: go run ./internal/benchreport [-strict] [FILE...] (standard input without files).
// With -strict it exits 1 when a target is missed or has no figures.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// results holds every figure read: per key ("<package>/<benchmark name>" without the
// GOMAXPROCS suffix, or "SCALE <what>"), per unit ("ns/op", "req/s", ..., "count"), one value
// per run.
type results map[string]map[string][]float64

func (r results) add(key, unit string, v float64) {
	if r[key] == nil {
		r[key] = map[string][]float64{}
	}
	r[key][unit] = append(r[key][unit], v)
}

var (
	// A benchmark line: name, iterations, then value-unit pairs.
	benchLine = regexp.MustCompile(`^(Benchmark\S+)\s+\d+\s+(.*)$`)
	// The GOMAXPROCS suffix go test puts after a benchmark's name.
	procsSuffix = regexp.MustCompile(`-\d+$`)
	// A scale test's log line (see mach's scaleOutcome).
	scaleLine = regexp.MustCompile(`SCALE (\S+): (\d+) of (\d+)(?: \(stopped by: (.*)\))?`)
)

// parse reads go test output. Benchmarks are keyed by the last element of the package that the
// preceding "pkg:" line names.
func parse(in io.Reader) (results, map[string]string, error) {
	r := results{}
	stops := map[string]string{} // what stopped each scale test, from the last run read
	pkg := ""
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = path.Base(p)
			continue
		}
		if m := scaleLine.FindStringSubmatch(line); m != nil {
			got, _ := strconv.ParseFloat(m[2], 64)
			r.add("SCALE "+m[1], "count", got)
			stops["SCALE "+m[1]] = m[4]
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key := pkg + "/" + procsSuffix.ReplaceAllString(m[1], "")
		f := strings.Fields(m[2])
		if len(f)%2 != 0 {
			return nil, nil, fmt.Errorf("a benchmark line without value-unit pairs: %q", line)
		}
		for i := 0; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, nil, fmt.Errorf("%q: %w", line, err)
			}
			r.add(key, f[i+1], v)
		}
	}
	return r, stops, sc.Err()
}

// median is the middle value (the mean of the two middle ones for an even count).
func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// A row of the Targets table: the median of Key's Unit, compared with Limit by Op either as
// it is (no Base) or divided by the median of Base's Unit.
type row struct {
	Case   string
	Key    string
	Base   string // "" for an absolute target
	Unit   string
	Op     string // "<=", "<" or ">="; "" for a figure without a target
	Limit  float64
	Target string // the target as the issue words it; without one (Op ""), what Base is
}

// rows is issue 18's Targets table, in its order, over the benchmarks .ci/bench runs.
var rows = func() []row {
	rr := "mach/BenchmarkRequestReply/"
	out := []row{
		{"64 B request/reply, send-once reply, across processes", rr + "mach", rr + "seqpacket", "ns/op", "<=", 1.6, "≤ 1.6× SOCK_SEQPACKET ping-pong"},
		{"64 B request/reply, send-once reply, across processes", rr + "mach", rr + "unixconn", "ns/op", "<=", 1.0, "≤ 1.0× framed net.UnixConn ping-pong"},
		{"CFMessagePort Request, 64 B", "cfmessageport/BenchmarkRoundTrip/cf/64", "cfmessageport/BenchmarkRoundTrip/raw/64", "ns/op", "<=", 1.1, "≤ 1.1× raw request/reply"},
		{"CPU per 64 B round trip, both processes", rr + "mach", rr + "seqpacket", "cpu-ns/op", "<=", 2, "≤ 2× SOCK_SEQPACKET ping-pong"},
	}
	for _, c := range []string{"goroutines16", "goroutines64", "processes16", "processes64"} {
		k := "mach/BenchmarkConcurrent/" + c + "/"
		out = append(out,
			row{c + " requesters: requests/s", k + "mach", k + "netrpc", "req/s", ">=", 1, "≥ 1.0× net/rpc over UDS"},
			row{c + " requesters: p99", k + "mach", "", "p99-ns", "<=", 2e6, "≤ 2 ms"})
	}
	out = append(out,
		row{"pipelined depth 64, per request", "mach/BenchmarkPipelined/mach", "mach/BenchmarkPipelined/seqpacket", "ns/op", "<=", 2, "≤ 2× Unix socket"},
		row{"64 KiB out of line, round trip", "mach/BenchmarkOutOfLine/64KiB/mach", "mach/BenchmarkOutOfLine/64KiB/unixstream", "ns/op", "<=", 1.5, "≤ 1.5× Unix stream socket"},
		row{"1 MiB out of line, round trip", "mach/BenchmarkOutOfLine/1MiB/mach", "mach/BenchmarkOutOfLine/1MiB/unixstream", "ns/op", "<=", 1.2, "≤ 1.2× Unix stream socket"})
	for _, s := range []string{"1MiB", "4MiB", "16MiB"} {
		k := "mach/BenchmarkRegionSend/" + s + "/"
		out = append(out, row{"AllocateRegion + fill + send with Deallocate, " + s, k + "region", k + "copy", "ns/op", "<", 1, "faster than the copy path"})
	}
	return append(out,
		row{"allocations: raw request/reply, reused messages", rr + "mach", "", "allocs/op", "<=", 0, "0 allocs/op"},
		row{"allocations: CF Request, 64 B", "cfmessageport/BenchmarkRoundTrip/cf/64", "", "allocs/op", "<=", 2, "≤ 2 allocs/op"},
		row{"scale: ports in one process", "SCALE ports", "", "count", ">=", 100_000, "100,000"},
		row{"scale: registered names in one process", "SCALE names", "", "count", ">=", 10_000, "10,000"})
}()

// oneCPURows are not targets: the request/reply and CF rows again, from .ci/bench's runs with
// both processes on one vCPU (taskset, GOMAXPROCS 2), whose benchmarks it renames with a
// OneCPU suffix. On a 2-vCPU VM a ping-pong whose two processes run on different vCPUs waits,
// whenever the other vCPU has gone idle, for the hypervisor to wake it (a round trip of about
// 75 µs against 10 on one vCPU), and the kernel moves the pair between the two layouts every few
// milliseconds; these ratios leave that out.
var oneCPURows = func() []row {
	rr := "mach/BenchmarkRequestReplyOneCPU/"
	rt := "cfmessageport/BenchmarkRoundTripOneCPU/"
	return []row{
		{"64 B request/reply, one vCPU", rr + "mach", rr + "seqpacket", "ns/op", "", 0, "SOCK_SEQPACKET ping-pong"},
		{"64 B request/reply, one vCPU", rr + "mach", rr + "unixconn", "ns/op", "", 0, "framed net.UnixConn ping-pong"},
		{"CFMessagePort Request, 64 B, one vCPU", rt + "cf/64", rt + "raw/64", "ns/op", "", 0, "raw request/reply"},
	}
}()

// outcome is a row evaluated.
type outcome struct {
	row
	runs        int
	value, base float64 // medians; base is 0 without a baseline
	measure     float64 // what is compared with Limit: value, or value/base
	met, known  bool    // known: the figures are there
}

func evaluate(r results, rw row) outcome {
	o := outcome{row: rw}
	v := r[rw.Key][rw.Unit]
	if len(v) == 0 {
		return o
	}
	o.runs, o.value, o.measure = len(v), median(v), median(v)
	if rw.Base != "" {
		b := r[rw.Base][rw.Unit]
		if len(b) == 0 {
			return o
		}
		o.base = median(b)
		o.measure = o.value / o.base
	}
	o.known = true
	switch rw.Op {
	case "<=":
		o.met = o.measure <= rw.Limit
	case "<":
		o.met = o.measure < rw.Limit
	case ">=":
		o.met = o.measure >= rw.Limit
	case "": // no target: nothing to meet
		o.met = true
	}
	return o
}

// spread formats the lowest and highest of a row's rounds: each round's ratio to the baseline
// run of the same round (the i-th run of each), or each round's value for a row without a
// baseline. It is "" for fewer than two rounds, or when the rounds of the two do not pair up
// (a run missing from one of them).
func spread(r results, rw row) string {
	v := r[rw.Key][rw.Unit]
	if len(v) < 2 {
		return ""
	}
	if rw.Base == "" {
		return figure(slices.Min(v), rw.Unit) + " to " + figure(slices.Max(v), rw.Unit)
	}
	b := r[rw.Base][rw.Unit]
	if len(b) != len(v) {
		return ""
	}
	ratios := make([]float64, len(v))
	for i := range v {
		ratios[i] = v[i] / b[i]
	}
	return fmt.Sprintf("%.2f× to %.2f×", slices.Min(ratios), slices.Max(ratios))
}

// figure formats a value of unit for the table.
func figure(v float64, unit string) string {
	switch unit {
	case "ns/op", "cpu-ns/op", "p99-ns", "p50-ns":
		if v >= 1e6 {
			return fmt.Sprintf("%.2f ms", v/1e6)
		}
		return fmt.Sprintf("%.1f µs", v/1e3)
	case "req/s":
		return fmt.Sprintf("%.0f req/s", v)
	case "allocs/op":
		return fmt.Sprintf("%.0f allocs/op", v)
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// report writes the table in Markdown and returns how many rows were missed or had no figures,
// then, when there are figures for them, the one-vCPU rows (which count for nothing).
func report(w io.Writer, r results, stops map[string]string) int {
	bad := 0
	fmt.Fprintln(w, "| case | median | baseline (median) | ratio | per round | target | |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, rw := range rows {
		o := evaluate(r, rw)
		if !o.known {
			bad++
			fmt.Fprintf(w, "| %s | no figures | | | | %s | missed |\n", rw.Case, rw.Target)
			continue
		}
		value, base, ratio := cells(o)
		verdict := "met"
		if !o.met {
			bad++
			verdict = "missed"
			if stop := stops[rw.Key]; stop != "" && rw.Unit == "count" {
				verdict += ": " + stop
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", rw.Case, value, base, ratio, spread(r, rw), rw.Target, verdict)
	}
	var fixed []outcome
	for _, rw := range oneCPURows {
		if o := evaluate(r, rw); o.known {
			fixed = append(fixed, o)
		}
	}
	if len(fixed) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Both processes on one vCPU (no targets):")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| case | median | baseline (median) | ratio | per round | against |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|")
		for _, o := range fixed {
			value, base, ratio := cells(o)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", o.Case, value, base, ratio, spread(r, o.row), o.Target)
		}
	}
	return bad
}

// cells formats an outcome's median (with its count of runs unless three), its baseline's and
// their ratio.
func cells(o outcome) (value, base, ratio string) {
	value = figure(o.value, o.Unit)
	if o.runs != 3 {
		value += fmt.Sprintf(" (%d runs)", o.runs)
	}
	if o.Base != "" {
		base, ratio = figure(o.base, o.Unit), fmt.Sprintf("%.2f×", o.measure)
	}
	return value, base, ratio
}

func main() {
	strict := flag.Bool("strict", false, "exit 1 when a target is missed or has no figures")
	flag.Parse()
	var in io.Reader = os.Stdin
	if flag.NArg() > 0 {
		var readers []io.Reader
		for _, name := range flag.Args() {
			f, err := os.Open(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, "benchreport:", err)
				os.Exit(2)
			}
			defer f.Close()
			readers = append(readers, f)
		}
		in = io.MultiReader(readers...)
	}
	r, stops, err := parse(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(2)
	}
	if bad := report(os.Stdout, r, stops); bad > 0 && *strict {
		os.Exit(1)
	}
}
