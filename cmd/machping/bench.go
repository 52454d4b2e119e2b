package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
)

func init() {
	register(&command{
		name:    "bench",
		args:    "[--sizes LIST] [--time D] [--transports LIST] [--concurrency N]",
		summary: "compare raw mach, CFMessagePort and a Unix-socket baseline",
		detail: `Starts an echo server in a child process that serves the three transports, then measures
round trips against it for each payload size: raw mach requests that carry a send-once reply
right, as clients and CFMessagePort do (inline up to 4000 bytes, out-of-line above, as CF
sends them), CFMessagePort requests, and a Unix stream socket with a length prefix (the
baseline). With --concurrency N, N requesters of each transport (each with a connection and
reply port of its own) make requests at once, each waiting for its reply before its next;
otherwise one request at a time. For each it reports the median and 99th-percentile round
trip, requests per second (of all requesters together), payload megabytes per second (one
way), and the median relative to the Unix socket's. Progress goes to stderr.`,
		examples: []string{
			"machping bench",
			"machping bench --sizes 64,1048576 --time 2s",
			"machping bench --sizes 64 --concurrency 16",
			"machping bench --json > bench.json",
		},
		flags: benchFlags,
	})
	register(&command{
		name:    "bench-server",
		args:    "",
		summary: "the echo server of 'machping bench' (started by it)",
		hidden:  true,
		flags:   benchServerFlags,
	})
}

// The transports bench measures, in its order.
const (
	transportUnix = "unix"
	transportRaw  = "raw"
	transportCF   = "cfmessageport"
)

// benchDoc is bench's JSON document.
type benchDoc struct {
	header
	OS          string        `json:"os"`
	Arch        string        `json:"arch"`
	CPUs        int           `json:"cpus"`
	IPC         string        `json:"ipc"`
	ServerPID   int           `json:"server_pid"`
	TimePerCase float64       `json:"time_per_case_s"`
	Concurrency int           `json:"concurrency"` // requesters of each transport at once
	Results     []benchResult `json:"results"`
	Interrupted bool          `json:"interrupted,omitempty"` // Ctrl-C ended the run; Results holds the cases measured in full
}

// benchResult is one transport at one payload size.
type benchResult struct {
	Transport  string  `json:"transport"` // "unix", "raw" or "cfmessageport"
	Size       int     `json:"size"`
	OutOfLine  bool    `json:"out_of_line"` // for raw and cfmessageport
	Requesters int     `json:"requesters"`  // each with a connection or reply port of its own
	RoundTrips int     `json:"round_trips"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	AvgMs      float64 `json:"avg_ms"`
	PerSecond  float64 `json:"round_trips_per_s"`     // of all requesters together
	MBPerS     float64 `json:"mb_per_s"`              // payload bytes one way, 10^6 per MB
	VsUnix     float64 `json:"p50_vs_unix,omitempty"` // this p50 over the Unix socket's at the same size
}

// benchReady is the bench server's first event.
type benchReady struct {
	header
	Event string `json:"event"` // "bench-server"
	PID   int    `json:"pid"`
	Raw   string `json:"raw"`  // the raw echo service's name
	CF    string `json:"cf"`   // the CFMessagePort echo service's name
	Unix  string `json:"unix"` // the Unix socket's path
}

func benchFlags(fs *flag.FlagSet, o *output) func(context.Context, []string) int {
	sizes := fs.String("sizes", "64,4000,65536,1048576", "payload sizes in bytes, comma-separated")
	perCase := durationFlag(fs, "time", 300*time.Millisecond, "measure each transport and size for `duration`")
	transports := fs.String("transports", "unix,raw,cfmessageport", "the transports to measure, comma-separated")
	concurrency := fs.Int("concurrency", 1, "`N` requesters of each transport at once")
	return func(ctx context.Context, args []string) int {
		if len(args) != 0 {
			return o.usageError("bench takes no arguments")
		}
		sizeList, err := parseSizes(*sizes)
		if err != nil {
			return o.usageError("--sizes: %v", err)
		}
		which := strings.Split(*transports, ",")
		for _, t := range which {
			if t != transportUnix && t != transportRaw && t != transportCF {
				return o.usageError("--transports: unknown transport %q (unix, raw, cfmessageport)", t)
			}
		}
		if *perCase <= 0 {
			return o.usageError("--time must be positive")
		}
		if *concurrency < 1 || *concurrency > maxConcurrency {
			return o.usageError("--concurrency must be between 1 and %d", maxConcurrency)
		}
		doc := benchDoc{header: newHeader("bench"), OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
			IPC: ipcBackend(), TimePerCase: perCase.Seconds(), Concurrency: *concurrency, Results: []benchResult{}}
		err = runBench(ctx, o, &doc, sizeList, which, *perCase, *concurrency)
		if err != nil && ctx.Err() != nil {
			err = errInterrupted // also during set-up, where a look-up or dial saw the context end
		}
		switch {
		case errors.Is(err, errInterrupted):
			// Ctrl-C: the cases measured so far are still worth printing.
			doc.Interrupted = true
			if o.json {
				return o.emit(doc, exitError)
			}
			printBench(o, &doc)
			o.progress("bench: interrupted; the cases above were measured in full\n")
			return exitError
		case err != nil:
			return o.fail(diagnosis{Message: "bench failed: " + err.Error()}, exitError)
		case o.json:
			return o.emit(doc, exitOK)
		}
		printBench(o, &doc)
		return exitOK
	}
}

func parseSizes(s string) ([]int, error) {
	var sizes []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > wire.MaxPayload {
			return nil, fmt.Errorf("%q is not a size between 0 and %d", f, wire.MaxPayload)
		}
		sizes = append(sizes, n)
	}
	return sizes, nil
}

// maxConcurrency bounds --concurrency: each requester holds a connection, a Remote and a reply
// port of its own, in this process and in the server.
const maxConcurrency = 256

// echoFunc makes one request of data and waits for its reply, returning the reply's length.
type echoFunc func(data []byte) (int, error)

func runBench(ctx context.Context, o *output, doc *benchDoc, sizes []int, transports []string, perCase time.Duration, concurrency int) error {
	var ready benchReady
	child, err := startChild(ctx, []string{"bench-server"}, "bench-server", &ready)
	if err != nil {
		return err
	}
	defer func() {
		child.end()
		// A server that had to be killed (a stopped one) could not remove its socket's folder.
		if dir := filepath.Dir(ready.Unix); strings.HasPrefix(filepath.Base(dir), benchDirPrefix) {
			_ = os.RemoveAll(dir)
		}
	}()
	doc.ServerPID = ready.PID
	o.progress("bench: echo server in child pid %d; %v per case; %d requester(s) at once\n", ready.PID, perCase, concurrency)

	// Requests carry no context: a receive that cannot be canceled is the fastest one. Ctrl-C
	// ends the server instead, and each client learns of its death at once (dead-name
	// notification, closed socket), even when the server is stopped and answers nothing.
	stopWatch := context.AfterFunc(ctx, child.end)
	defer stopWatch()
	clients := map[string][]echoFunc{}
	for i := 0; i < concurrency*len(transports); i++ {
		t := transports[i%len(transports)]
		switch t {
		case transportUnix:
			conn, err := net.Dial("unix", ready.Unix)
			if err != nil {
				return err
			}
			defer conn.Close()
			stopConn := context.AfterFunc(ctx, func() { conn.Close() })
			defer stopConn()
			clients[t] = append(clients[t], unixEcho(conn))
		case transportRaw:
			right, err := bootstrap.LookUp(ctx, ready.Raw)
			if err != nil {
				return err
			}
			c, err := newRawClient(right)
			if err != nil {
				return err
			}
			defer c.close()
			id := int32(0)
			clients[t] = append(clients[t], func(data []byte) (int, error) {
				id++
				got, err := c.request(context.Background(), id, data)
				return len(got), err
			})
		case transportCF:
			remote, err := cfmessageport.Dial(ctx, ready.CF)
			if err != nil {
				return err
			}
			defer remote.Close()
			// Read in place, as the raw client reads its replies: Request would copy each one.
			clients[t] = append(clients[t], func(data []byte) (n int, err error) {
				err = remote.RequestFunc(context.Background(), 1, data, func(reply []byte) error {
					n = len(reply)
					return nil
				})
				return n, err
			})
		}
	}
	for _, size := range sizes {
		data := make([]byte, size)
		fillPattern(data, size)
		var unixP50 float64
		for _, t := range transports {
			o.progress("bench: %-13s %9s ...", t, sizeText(size))
			r, err := measure(ctx, clients[t], data, perCase)
			if ctx.Err() != nil {
				o.progress(" interrupted\n")
				return errInterrupted
			}
			if err != nil {
				o.progress(" failed\n")
				return fmt.Errorf("%s, %d bytes: %w", t, size, err)
			}
			r.Transport, r.Size = t, size
			r.OutOfLine = t != transportUnix && !wire.Inline(size)
			if t == transportUnix {
				unixP50 = r.P50Ms
			} else if unixP50 > 0 {
				r.VsUnix = math.Round(100*r.P50Ms/unixP50) / 100
			}
			o.progress(" %d round trips, p50 %.1f µs\n", r.RoundTrips, 1000*r.P50Ms)
			doc.Results = append(doc.Results, r)
		}
	}
	return nil
}

// measure has each requester of echos make round trips, one after the other, for d of its own
// time (at least 10 each, after 10 unmeasured ones to warm up), all at once; requests per second
// are of all of them over the time from the first measured request to the last reply.
func measure(ctx context.Context, echos []echoFunc, data []byte, d time.Duration) (benchResult, error) {
	const warmup, least = 10, 10
	lats := make([]latencies, len(echos))
	errs := make([]error, len(echos))
	once := func(echo echoFunc) (time.Duration, error) {
		start := time.Now()
		n, err := echo(data)
		rtt := time.Since(start)
		if err == nil && n != len(data) {
			err = fmt.Errorf("%d bytes came back, not %d", n, len(data))
		}
		return rtt, err
	}
	var warm, done sync.WaitGroup
	warm.Add(len(echos))
	measuring := make(chan struct{})
	for i, echo := range echos {
		done.Go(func() {
			for range warmup {
				if _, errs[i] = once(echo); errs[i] != nil {
					break
				}
			}
			warm.Done()
			<-measuring // every requester warm, so that all are measured at once
			var elapsed time.Duration
			for errs[i] == nil && (elapsed < d || len(lats[i].samples) < least) {
				if errs[i] = ctx.Err(); errs[i] != nil {
					break // Ctrl-C
				}
				var rtt time.Duration
				if rtt, errs[i] = once(echo); errs[i] == nil {
					lats[i].add(rtt)
					elapsed += rtt
				}
			}
		})
	}
	warm.Wait()
	start := time.Now()
	close(measuring)
	done.Wait()
	wall := time.Since(start)
	if err := ctx.Err(); err != nil {
		return benchResult{}, err
	}
	var all latencies
	for i := range echos {
		if errs[i] != nil {
			return benchResult{}, errs[i]
		}
		all.samples = append(all.samples, lats[i].samples...)
	}
	s := all.summary()
	perSec := float64(s.Count) / wall.Seconds()
	return benchResult{Requesters: len(echos), RoundTrips: s.Count, P50Ms: s.P50, P99Ms: s.P99, AvgMs: s.Avg, PerSecond: float64(int(perSec)),
		MBPerS: round3(perSec * float64(len(data)) / 1e6)}, nil
}

func printBench(o *output, doc *benchDoc) {
	at := "one request at a time"
	if doc.Concurrency > 1 {
		at = fmt.Sprintf("%d requesters at once", doc.Concurrency)
	}
	o.printf("machping bench on %s/%s (%d CPUs, %s): echo server in pid %d, %gs per case, %s\n",
		doc.OS, doc.Arch, doc.CPUs, doc.IPC, doc.ServerPID, doc.TimePerCase, at)
	o.printf("%-14s %9s  %-11s %9s %9s %10s %9s %8s\n", "transport", "size", "how", "p50 µs", "p99 µs", "req/s", "MB/s", "vs unix")
	for _, r := range doc.Results {
		how := "stream"
		if r.Transport != transportUnix {
			how = "inline"
			if r.OutOfLine {
				how = "out-of-line"
			}
		}
		vs := "-"
		if r.VsUnix > 0 {
			vs = fmt.Sprintf("%.2fx", r.VsUnix)
		}
		o.printf("%-14s %9s  %-11s %9.1f %9.1f %10.0f %9.1f %8s\n", r.Transport, sizeText(r.Size), how, 1000*r.P50Ms, 1000*r.P99Ms,
			r.PerSecond, r.MBPerS, vs)
	}
}

func sizeText(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// unixEcho is the baseline client: a 4-byte little-endian length, then the payload, each way.
func unixEcho(conn net.Conn) func([]byte) (int, error) {
	var out, in []byte
	return func(data []byte) (int, error) {
		out = binary.LittleEndian.AppendUint32(out[:0], uint32(len(data)))
		out = append(out, data...)
		if _, err := conn.Write(out); err != nil {
			return 0, err
		}
		var hdr [4]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return 0, err
		}
		n := int(binary.LittleEndian.Uint32(hdr[:]))
		if cap(in) < n {
			in = make([]byte, n)
		}
		_, err := io.ReadFull(conn, in[:n])
		return n, err
	}
}

// serveUnixEcho answers the baseline's framing on every connection until l closes.
func serveUnixEcho(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			var buf []byte
			for {
				var hdr [4]byte
				if _, err := io.ReadFull(conn, hdr[:]); err != nil {
					return
				}
				n := int(binary.LittleEndian.Uint32(hdr[:]))
				if n > wire.MaxPayload {
					return
				}
				if cap(buf) < 4+n {
					buf = make([]byte, 4+n)
				}
				buf = buf[:4+n]
				copy(buf, hdr[:])
				if _, err := io.ReadFull(conn, buf[4:]); err != nil {
					return
				}
				if _, err := conn.Write(buf); err != nil {
					return
				}
			}
		}()
	}
}

func benchServerFlags(fs *flag.FlagSet, o *output) func(context.Context, []string) int {
	return func(ctx context.Context, args []string) int {
		if err := benchServer(untilStdinCloses(ctx), o); err != nil {
			return o.fail(diagnosis{Message: "bench server: " + err.Error()}, exitError)
		}
		return exitOK
	}
}

// The bench server's Unix socket: its name, the start of its temporary folder's name, and the
// longest path a socket may have on every platform (macOS's sun_path holds 104 bytes with the
// NUL, Linux's 108).
const (
	benchSocket    = "echo.sock"
	benchDirPrefix = "machping-bench-"
	maxSocketPath  = 103
)

func benchServer(ctx context.Context, o *output) error {
	base := strings.Replace(selftestName(), ".selftest.", ".bench.", 1)
	ready := benchReady{header: newHeader("bench-server"), Event: "bench-server", PID: os.Getpid(),
		Raw: base + ".raw", CF: base + ".cf"}

	dir, err := os.MkdirTemp("", benchDirPrefix)
	if err != nil {
		return err
	}
	if len(filepath.Join(dir, benchSocket)) > maxSocketPath {
		// A long TMPDIR (macOS's /var/folders/..., a test's own folder) leaves no room in
		// sun_path: use /tmp instead.
		os.Remove(dir)
		if dir, err = os.MkdirTemp("/tmp", benchDirPrefix); err != nil {
			return err
		}
	}
	defer os.RemoveAll(dir)
	ready.Unix = filepath.Join(dir, benchSocket)
	l, err := net.Listen("unix", ready.Unix)
	if err != nil {
		return err
	}
	defer l.Close()
	go serveUnixEcho(l)

	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return err
	}
	reg, err := bootstrap.Register(ready.Raw, port, &bootstrap.Options{})
	if err != nil {
		port.Close()
		return err
	}
	rawDone := make(chan error, 1)
	go func() { rawDone <- rawServe(reg.Port(), nil, nil, func(error) {}) }()
	defer func() {
		reg.Close()
		<-rawDone
	}()

	srv, err := cfmessageport.Listen(ready.CF, cfmessageport.HandlerFunc(
		func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) { return req.Data, nil }), nil)
	if err != nil {
		return err
	}
	defer srv.Close()

	o.emit(ready, 0)
	select {
	case <-ctx.Done():
		return nil
	case err := <-rawDone:
		rawDone <- err // for the deferred wait
		return fmt.Errorf("the raw server stopped: %w", err)
	}
}
