package cfmessageport_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/cfmessageport"
)

// serverConcurrencies are the ServerOptions.Concurrency values BenchmarkServerConcurrency
// compares; each has a child role "srvconc<N>" serving echo with it.
var serverConcurrencies = []int{1, 16, 64}

func init() {
	for _, n := range serverConcurrencies {
		extraRoles[fmt.Sprintf("srvconc%d", n)] = func(name string) error {
			return serveUntilStdinCloses(name, echo, &cfmessageport.ServerOptions{Concurrency: n})
		}
	}
}

// BenchmarkServerConcurrency measures an echo server in a child process with Concurrency 1, 16
// and 64, under as many requesting goroutines in this process as its Concurrency (reqsN) and
// under 64 of them (reqs64), each with a Remote of its own, 64-byte requests; and (inproc) the
// same server in this process under 64 requesting goroutines, where the server's own cost is not
// hidden behind a second process's scheduling. It reports the
// requests per second and the 50th and 99th percentile round trips; compare the sub-benchmarks
// of one run with each other (conc1 is the baseline: a server with Concurrency N must not be
// slower than one with 1).
func BenchmarkServerConcurrency(b *testing.B) {
	for _, conc := range serverConcurrencies {
		for _, reqs := range slices.Compact([]int{conc, 64}) {
			b.Run(fmt.Sprintf("conc%d/reqs%d", conc, reqs), func(b *testing.B) {
				benchServerConcurrency(b, conc, reqs, false)
			})
		}
	}
	for _, conc := range serverConcurrencies {
		b.Run(fmt.Sprintf("inproc/conc%d/reqs64", conc), func(b *testing.B) {
			benchServerConcurrency(b, conc, 64, true)
		})
	}
}

func benchServerConcurrency(b *testing.B, conc, reqs int, inProcess bool) {
	ctx := context.Background()
	name := uniqueName(b)
	if inProcess {
		srv, err := cfmessageport.Listen(name, echo, &cfmessageport.ServerOptions{Concurrency: conc})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { srv.Close() })
	} else {
		startChild(b, fmt.Sprintf("srvconc%d", conc), name)
	}
	remotes := make([]*cfmessageport.Remote, reqs)
	for i := range remotes {
		r, err := cfmessageport.Dial(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Close() })
		remotes[i] = r
	}
	payload := []byte(strings.Repeat("x", 64))
	lats := make([][]time.Duration, reqs)
	errs := make([]error, reqs)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, r := range remotes {
		k := b.N / reqs
		if i < b.N%reqs {
			k++
		}
		wg.Go(func() {
			lat := make([]time.Duration, k)
			for j := range lat {
				t := time.Now()
				got, err := r.Request(ctx, msgEcho, payload)
				if err != nil {
					errs[i] = err
					return
				}
				if len(got) != len(payload) {
					errs[i] = fmt.Errorf("%d bytes back", len(got))
					return
				}
				lat[j] = time.Since(t)
			}
			lats[i] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	all := slices.Concat(lats...)
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
}
