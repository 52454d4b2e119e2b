package cfmessageport_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/testproc"
)

func init() {
	extraRoles["loadserve"] = runLoadServer
	extraRoles["loadclient"] = runLoadClient
}

// Message ids of the load server: msgEcho, and loadStats, which answers "<handled> <repeated>"
// (requests handled since the last loadStats, and how many of them carried a payload seen before)
// and starts counting again.
const loadStats = 50

// runLoadServer serves name with a default server (Listen with nil options) that echoes and
// counts the requests, noting any payload it has seen before: every request of the benchmark
// carries a unique one, so a repeated payload is a duplicated request.
func runLoadServer(name string) error {
	var mu sync.Mutex
	seen := map[string]struct{}{}
	handled, repeated := 0, 0
	return serveUntilStdinCloses(name, cfmessageport.HandlerFunc(func(_ context.Context, req *cfmessageport.Message) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		if req.MsgID == loadStats {
			out := fmt.Appendf(nil, "%d %d", handled, repeated)
			handled, repeated = 0, 0
			return out, nil
		}
		handled++
		if _, ok := seen[string(req.Data)]; ok {
			repeated++
		}
		seen[string(req.Data)] = struct{}{}
		return req.Data, nil
	}), nil)
}

// loadProgress is how many requests a load client makes between two progress lines, so that
// the benchmark hears from it well within testproc's 20 s wait for a line.
const loadProgress = 250

// runLoadClient dials name and, for each "go <n> <run>" line on stdin, makes n requests one
// after the other, each with a payload unique to this process, run and request, and checks
// that each reply is its request's payload. It prints "." every loadProgress requests and then
// "done", or "fail: <why>" at the first request that fails or is answered wrongly.
func runLoadClient(name string) error {
	ctx := context.Background()
	r, err := cfmessageport.Dial(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	pid := os.Getpid()
	var payload []byte
	for in.Scan() {
		var n, run int
		if _, err := fmt.Sscanf(in.Text(), "go %d %d", &n, &run); err != nil {
			return err
		}
		failed := false
		for i := range n {
			payload = fmt.Appendf(payload[:0], "load %d/%d/%d", pid, run, i)
			rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			got, err := r.Request(rctx, msgEcho, payload)
			cancel()
			if err != nil {
				fmt.Printf("fail: request %d: %v\n", i, err)
				failed = true
				break
			}
			if !bytes.Equal(got, payload) {
				fmt.Printf("fail: request %q answered with %q\n", payload, got)
				failed = true
				break
			}
			if (i+1)%loadProgress == 0 {
				fmt.Println(".")
			}
		}
		if !failed {
			fmt.Println("done")
		}
	}
	return nil
}

// BenchmarkLoad measures a default server (Listen with nil options, in a child process) under
// 64 client processes making 1,000 requests each at once, against one client process making
// the same 64,000 requests one after the other, in the same run. It reports the requests per
// second of both and their ratio (load/seq). Every reply is checked against its request (each
// payload is unique to its process, run and request) and the server counts what it handled:
// a request lost, repeated or answered wrongly fails the benchmark.
func BenchmarkLoad(b *testing.B) {
	const clients, perClient = 64, 1000
	ctx := context.Background()
	name := uniqueName(b)
	startChild(b, "loadserve", name)
	stats, err := cfmessageport.Dial(ctx, name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stats.Close() })
	// All clients start before any is waited for, so that they start in parallel.
	all := make([]*child, clients+1)
	for i := range all {
		all[i] = testproc.Start(b, "loadclient", name)
	}
	for _, c := range all {
		if line := c.Line(b); line != "ready" {
			b.Fatalf("a client says %q", line)
		}
	}
	load, seq := all[:clients], all[clients:]

	run := 0
	// phase has each client make n requests, checks the outcome, and returns how long it took.
	phase := func(cs []*child, n int) time.Duration {
		run++
		start := time.Now()
		for _, c := range cs {
			fmt.Fprintf(c.Stdin, "go %d %d\n", n, run)
		}
		// The clients' output waits in their pipes while another client's is read.
		for _, c := range cs {
			for line := c.Line(b); line != "done"; line = c.Line(b) {
				if line != "." {
					b.Fatalf("a client: %s", line)
				}
			}
		}
		took := time.Since(start)
		got, err := stats.Request(ctx, loadStats, nil)
		if err != nil {
			b.Fatal(err)
		}
		f := strings.Fields(string(got))
		handled, _ := strconv.Atoi(f[0])
		if want := len(cs) * n; handled != want || f[1] != "0" {
			b.Fatalf("the server handled %d requests (%s repeated), not %d", handled, f[1], want)
		}
		return took
	}

	var loadTime, seqTime time.Duration
	for b.Loop() {
		loadTime += phase(load, perClient)
		seqTime += phase(seq, clients*perClient)
	}
	total := float64(b.N * clients * perClient)
	loadRate, seqRate := total/loadTime.Seconds(), total/seqTime.Seconds()
	b.ReportMetric(loadRate, "load-req/s")
	b.ReportMetric(seqRate, "seq-req/s")
	b.ReportMetric(loadRate/seqRate, "load/seq")
}
