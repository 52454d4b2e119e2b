package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// sample is go test output as .ci/bench collects it: three runs of two packages, interleaved,
// and a scale test's log.
const sample = `goos: linux
pkg: github.com/machport/machport/mach
BenchmarkRequestReply/mach-2         	    7584	     32000 ns/op	     30000 cpu-ns/op	     23886 p50-ns	     87951 p99-ns	     112 B/op	       3 allocs/op
BenchmarkRequestReply/seqpacket-2    	   21968	     10000 ns/op	      9000 cpu-ns/op	      7542 p50-ns	     36995 p99-ns	       0 B/op	       0 allocs/op
BenchmarkConcurrent/goroutines16/mach-2 	9014	40362 ns/op	68842 p50-ns	1500000 p99-ns	30000 req/s
BenchmarkConcurrent/goroutines16/netrpc-2 	9014	40362 ns/op	68842 p50-ns	1500000 p99-ns	25000 req/s
PASS
    scale_bench_test.go:60: SCALE ports: 3331 of 100000 (stopped by: KERN_RESOURCE_SHORTAGE)
pkg: github.com/machport/machport/cfmessageport
BenchmarkRoundTrip/raw/64-2   	   10000	     40000 ns/op	     200 B/op	       5 allocs/op
BenchmarkRoundTrip/cf/64-2    	   10000	     42000 ns/op	     200 B/op	       2 allocs/op
pkg: github.com/machport/machport/mach
BenchmarkRequestReply/mach-2         	    7584	     31000 ns/op	     31000 cpu-ns/op	     23886 p50-ns	     87951 p99-ns	     112 B/op	       3 allocs/op
BenchmarkRequestReply/seqpacket-2    	   21968	     11000 ns/op	      9000 cpu-ns/op	      7542 p50-ns	     36995 p99-ns	       0 B/op	       0 allocs/op
pkg: github.com/machport/machport/mach
BenchmarkRequestReply/mach-2         	    7584	     35000 ns/op	     29000 cpu-ns/op	     23886 p50-ns	     87951 p99-ns	     112 B/op	       3 allocs/op
BenchmarkRequestReply/seqpacket-2    	   21968	      9000 ns/op	      9000 cpu-ns/op	      7542 p50-ns	     36995 p99-ns	       0 B/op	       0 allocs/op
`

func TestParse(t *testing.T) {
	r, stops, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	for _, tc := range []struct {
		key, unit string
		want      []float64
	}{
		{"mach/BenchmarkRequestReply/mach", "ns/op", []float64{32000, 31000, 35000}},
		{"mach/BenchmarkRequestReply/seqpacket", "allocs/op", []float64{0, 0, 0}},
		// The GOMAXPROCS suffix goes, a digit in the name stays.
		{"mach/BenchmarkConcurrent/goroutines16/netrpc", "req/s", []float64{25000}},
		// The same benchmark name in two packages stays apart.
		{"cfmessageport/BenchmarkRoundTrip/cf/64", "ns/op", []float64{42000}},
		{"SCALE ports", "count", []float64{3331}},
	} {
		require.Equal(t, tc.want, r[tc.key][tc.unit], "%s %s", tc.key, tc.unit)
	}
	require.Equal(t, "KERN_RESOURCE_SHORTAGE", stops["SCALE ports"])
}

func TestParseRejectsAHalfPair(t *testing.T) {
	_, _, err := parse(strings.NewReader("pkg: x\nBenchmarkX-2  10  123 ns/op 5\n"))
	require.ErrorContains(t, err, "value-unit pairs")
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{9, 1, 5}, 5},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		require.Equal(t, tc.want, median(tc.in), "%v", tc.in)
	}
}

// addRuns adds one figure per run of key's unit, in the order of the runs.
func (r results) addRuns(key, unit string, runs ...float64) {
	for _, v := range runs {
		r.add(key, unit, v)
	}
}

func TestEvaluate(t *testing.T) {
	r := results{}
	r.addRuns("a", "ns/op", 10, 30, 20)
	r.addRuns("b", "ns/op", 10, 11, 9)
	for _, tc := range []struct {
		name        string
		rw          row
		known, met  bool
		measure     float64
		value, base float64
	}{
		{"ratio within", row{Key: "a", Base: "b", Unit: "ns/op", Op: "<=", Limit: 2}, true, true, 2, 20, 10},
		{"ratio over", row{Key: "a", Base: "b", Unit: "ns/op", Op: "<=", Limit: 1.9}, true, false, 2, 20, 10},
		{"strictly below, equal", row{Key: "a", Base: "b", Unit: "ns/op", Op: "<", Limit: 2}, true, false, 2, 20, 10},
		{"at least", row{Key: "a", Base: "b", Unit: "ns/op", Op: ">=", Limit: 2}, true, true, 2, 20, 10},
		{"absolute", row{Key: "a", Unit: "ns/op", Op: "<=", Limit: 19}, true, false, 20, 20, 0},
		{"no baseline figures", row{Key: "a", Base: "c", Unit: "ns/op", Op: "<=", Limit: 2}, false, false, 20, 20, 0},
		{"no figures", row{Key: "c", Unit: "ns/op", Op: "<=", Limit: 2}, false, false, 0, 0, 0},
		{"no target", row{Key: "a", Base: "b", Unit: "ns/op"}, true, true, 2, 20, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := evaluate(r, tc.rw)
			require.Equal(t, tc.known, o.known)
			require.Equal(t, tc.met, o.met)
			require.Equal(t, tc.measure, o.measure)
			require.Equal(t, tc.value, o.value)
			require.Equal(t, tc.base, o.base)
		})
	}
}

// TestSpread: rounds pair up by their order; a run missing from one side leaves no spread.
func TestSpread(t *testing.T) {
	r := results{}
	r.addRuns("a", "ns/op", 20, 30, 10)
	r.addRuns("b", "ns/op", 10, 10, 10)
	r.addRuns("c", "ns/op", 5)
	require.Equal(t, "1.00× to 3.00×", spread(r, row{Key: "a", Base: "b", Unit: "ns/op"}))
	r.addRuns("a", "req/s", 3000, 1000, 2000)
	require.Equal(t, "1000 req/s to 3000 req/s", spread(r, row{Key: "a", Unit: "req/s"}))
	require.Equal(t, "", spread(r, row{Key: "a", Base: "c", Unit: "ns/op"}), "3 rounds against 1")
	require.Equal(t, "", spread(r, row{Key: "c", Unit: "ns/op"}), "one round")
}

func TestReport(t *testing.T) {
	r, stops, err := parse(strings.NewReader(sample))
	require.NoError(t, err)
	var out strings.Builder
	bad := report(&out, r, stops)
	got := out.String()
	for _, want := range []string{
		// Medians 32,000 and 10,000 ns: 3.20×, over 1.6. The rounds pair up: 32/10, 31/11 and
		// 35/9, so 2.82× to 3.89× (not 31/11 to 35/9 taken apart, nor the medians' ratio).
		"| 64 B request/reply, send-once reply, across processes | 32.0 µs | 10.0 µs | 3.20× | 2.82× to 3.89× | ≤ 1.6× SOCK_SEQPACKET ping-pong | missed |",
		"| CPU per 64 B round trip, both processes | 30.0 µs | 9.0 µs | 3.33× | 3.22× to 3.44× | ≤ 2× SOCK_SEQPACKET ping-pong | missed |",
		// One run only: said so, and no spread.
		"| CFMessagePort Request, 64 B | 42.0 µs (1 runs) | 40.0 µs | 1.05× |  | ≤ 1.1× raw request/reply | met |",
		"| goroutines16 requesters: requests/s | 30000 req/s (1 runs) | 25000 req/s | 1.20× |  | ≥ 1.0× net/rpc over UDS | met |",
		"| goroutines16 requesters: p99 | 1.50 ms (1 runs) |  |  |  | ≤ 2 ms | met |",
		// Without a baseline, the spread of the values.
		"| allocations: raw request/reply, reused messages | 3 allocs/op |  |  | 3 allocs/op to 3 allocs/op | 0 allocs/op | missed |",
		"| allocations: CF Request, 64 B | 2 allocs/op (1 runs) |  |  |  | ≤ 2 allocs/op | met |",
		"| scale: ports in one process | 3331 (1 runs) |  |  |  | 100,000 | missed: KERN_RESOURCE_SHORTAGE |",
		"| pipelined depth 64, per request | no figures | | | | ≤ 2× Unix socket | missed |",
	} {
		require.Contains(t, got, want)
	}
	require.Equal(t, 18, bad, got)
	// Without OneCPU runs, no one-vCPU table.
	require.NotContains(t, got, "one vCPU")
}

// TestReportOneCPU: the one-vCPU runs, renamed by .ci/bench, make a table of their own, and
// count for nothing however they compare.
func TestReportOneCPU(t *testing.T) {
	oneCPU := sample + `pkg: github.com/machport/machport/mach
BenchmarkRequestReplyOneCPU/mach-2         	    7584	     12000 ns/op	     12000 cpu-ns/op
BenchmarkRequestReplyOneCPU/seqpacket-2    	   21968	      6000 ns/op	      6000 cpu-ns/op
pkg: github.com/machport/machport/cfmessageport
BenchmarkRoundTripOneCPU/raw/64-2   	   10000	     10000 ns/op
BenchmarkRoundTripOneCPU/cf/64-2    	   10000	     30000 ns/op
`
	r, stops, err := parse(strings.NewReader(oneCPU))
	require.NoError(t, err)
	var out strings.Builder
	bad := report(&out, r, stops)
	got := out.String()
	require.Contains(t, got, "| 64 B request/reply, one vCPU | 12.0 µs (1 runs) | 6.0 µs | 2.00× |  | SOCK_SEQPACKET ping-pong |")
	require.Contains(t, got, "| CFMessagePort Request, 64 B, one vCPU | 30.0 µs (1 runs) | 10.0 µs | 3.00× |  | raw request/reply |")
	require.Equal(t, 2, strings.Count(got, "one vCPU |"), "no unixconn figures: no row for them\n%s", got)
	require.Equal(t, 18, bad, "one-vCPU rows count for nothing")
	// They do not mix with the targets' figures either.
	require.Contains(t, got, "| CFMessagePort Request, 64 B | 42.0 µs (1 runs) | 40.0 µs | 1.05× |  |")
}
