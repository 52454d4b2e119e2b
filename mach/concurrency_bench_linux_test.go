//go:build linux

package mach_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/rpc"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
)

// concReceivers is how many goroutines of the mach server receive from its one port: a server
// that means to serve requesters at once drains its port from more than one goroutine, as
// net/rpc's server runs a goroutine per connection.
const concReceivers = 4

// BenchmarkConcurrent has 16 and 64 requesters make 64-byte requests at once against one server
// in a child process, each requester waiting for its reply before its next request: as
// goroutines of this process (goroutines16, goroutines64) and as child processes of their own
// (processes16, processes64). The mach server registers a bootstrap name and answers through
// each request's send-once right (concReceivers goroutines drain its port); every requester has
// a reply port of its own. The baseline is net/rpc over a Unix socket, a connection per
// requester, in the same run. It reports req/s and the p50 and p99 of the requests' round trips.
func BenchmarkConcurrent(b *testing.B) {
	machName := testproc.UniqueName(b, "com.machport.bench.conc")
	rpcPath := filepath.Join(b.TempDir(), "rpc.sock")
	servers := map[string]string{"mach": "mach:" + machName, "netrpc": "rpc:" + rpcPath}
	for _, s := range []struct{ role, name string }{{"concmach", machName}, {"concrpc", rpcPath}} {
		c := testproc.Start(b, s.role, s.name)
		if line := c.Line(b); line != "ready" {
			b.Fatalf("the %s server says %q", s.role, line)
		}
	}
	for _, n := range []int{16, 64} {
		for _, kind := range []string{"mach", "netrpc"} {
			b.Run(fmt.Sprintf("goroutines%d/%s", n, kind), func(b *testing.B) {
				concGoroutines(b, n, servers[kind])
			})
		}
		for _, kind := range []string{"mach", "netrpc"} {
			b.Run(fmt.Sprintf("processes%d/%s", n, kind), func(b *testing.B) {
				concProcesses(b, n, servers[kind])
			})
		}
	}
}

// share is requester i's share of total requests among n.
func share(total, n, i int) int {
	k := total / n
	if i < total%n {
		k++
	}
	return k
}

// concGoroutines runs b.N requests from n goroutines, each with a requester of its own.
func concGoroutines(b *testing.B, n int, server string) {
	reqs := make([]func() error, n)
	for i := range reqs {
		req, closeReq, err := newRequester(server)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(closeReq)
		reqs[i] = req
	}
	lats := make([][]time.Duration, n)
	errs := make([]error, n)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() { lats[i], errs[i] = timeRequests(req, share(b.N, n, i)) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	reportConcurrent(b, elapsed, slices.Concat(lats...))
}

// concProcesses runs b.N requests from n child processes (role concclient).
func concProcesses(b *testing.B, n int, server string) {
	cs := make([]*testproc.Child, n)
	for i := range cs {
		cs[i] = testproc.Start(b, "concclient", server)
	}
	for _, c := range cs {
		if line := c.Line(b); line != "ready" {
			b.Fatalf("a requester says %q", line)
		}
	}
	var lat []time.Duration
	b.ResetTimer()
	start := time.Now()
	for i, c := range cs {
		fmt.Fprintf(c.Stdin, "go %d\n", share(b.N, n, i))
	}
	// Each requester prints "done" and its round trips in ns when its share is made; the lines
	// wait in their pipes while another is read.
	for _, c := range cs {
		f := strings.Fields(c.Line(b))
		if len(f) == 0 || f[0] != "done" {
			b.Fatalf("a requester says %q", strings.Join(f, " "))
		}
		for _, s := range f[1:] {
			ns, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Duration(ns))
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	for _, c := range cs {
		c.Stdin.Close()
	}
	reportConcurrent(b, elapsed, lat)
}

func reportConcurrent(b *testing.B, elapsed time.Duration, lat []time.Duration) {
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	reportLatency(b, lat)
}

// timeRequests makes k requests with req and returns their round trips.
func timeRequests(req func() error, k int) ([]time.Duration, error) {
	lat := make([]time.Duration, k)
	for i := range lat {
		start := time.Now()
		if err := req(); err != nil {
			return nil, err
		}
		lat[i] = time.Since(start)
	}
	return lat, nil
}

// newRequester connects to server ("mach:<bootstrap name>" or "rpc:<socket path>") and returns
// a function that makes one 64-byte request and waits for its reply, and one that disconnects.
func newRequester(server string) (func() error, func(), error) {
	kind, target, _ := strings.Cut(server, ":")
	body := make([]byte, 64)
	if kind == "rpc" {
		c, err := rpc.Dial("unix", target)
		if err != nil {
			return nil, nil, err
		}
		var reply []byte
		return func() error { return c.Call("Echo.Echo", body, &reply) }, func() { c.Close() }, nil
	}
	ctx := context.Background()
	service, err := bootstrap.LookUp(ctx, target)
	if err != nil {
		return nil, nil, err
	}
	reply, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		service.Close()
		return nil, nil, err
	}
	out := &mach.Message{Remote: mach.CopySendOf(service), Local: mach.MakeSendOnceOf(reply), ID: 1, Body: body}
	var in mach.Message
	return func() error {
			if err := mach.Send(ctx, out); err != nil {
				return err
			}
			return mach.Receive(ctx, reply, &in)
		}, func() {
			service.Close()
			reply.Close()
		}, nil
}

// concClient is a requester process: for each "go <k>" line on stdin it makes k requests and
// prints "done" and their round trips in ns.
func concClient() error {
	req, closeReq, err := newRequester(os.Getenv(testproc.NameEnv))
	if err != nil {
		return err
	}
	defer closeReq()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		var k int
		if _, err := fmt.Sscanf(in.Text(), "go %d", &k); err != nil {
			return err
		}
		lat, err := timeRequests(req, k)
		if err != nil {
			return err
		}
		out.WriteString("done")
		for _, d := range lat {
			out.WriteByte(' ')
			out.WriteString(strconv.FormatInt(d.Nanoseconds(), 10))
		}
		out.WriteByte('\n')
		if err := out.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// concMachServer registers its port under the name it is given and answers every request with
// its body through the request's send-once right, from concReceivers goroutines, until its stdin
// closes.
func concMachServer() error {
	port, err := mach.NewPort(mach.PortOptions{QueueLimit: 64})
	if err != nil {
		return err
	}
	reg, err := bootstrap.Register(os.Getenv(testproc.NameEnv), port, &bootstrap.Options{})
	if err != nil {
		port.Close()
		return err
	}
	var wg sync.WaitGroup
	for range concReceivers {
		wg.Go(func() {
			ctx := context.Background()
			var in, out mach.Message
			for {
				if err := mach.Receive(ctx, reg.Port(), &in); err != nil {
					if mach.PortGone(err) {
						return
					}
					continue
				}
				so, ok := in.TakeRemote().(*mach.SendOnceRight)
				if !ok {
					in.Destroy()
					continue
				}
				out = mach.Message{ID: in.ID, Remote: mach.MoveSendOnceOf(so), Body: in.Body}
				_ = mach.Send(ctx, &out)
				in.Destroy()
			}
		})
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	reg.Close()
	wg.Wait()
	return nil
}

// Echo is net/rpc's echo service for the baseline.
type Echo struct{}

// Echo answers with the request.
func (Echo) Echo(req []byte, reply *[]byte) error {
	*reply = req
	return nil
}

// concRPCServer serves Echo with net/rpc on the Unix socket at the path it is given until its
// stdin closes.
func concRPCServer() error {
	srv := rpc.NewServer()
	if err := srv.Register(Echo{}); err != nil {
		return err
	}
	l, err := net.Listen("unix", os.Getenv(testproc.NameEnv))
	if err != nil {
		return err
	}
	defer l.Close()
	go func() {
		// srv.Accept would log the listener's closing at exit.
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(c)
		}
	}()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

func init() {
	baselinePeers["concmach"] = concMachServer
	baselinePeers["concrpc"] = concRPCServer
	baselinePeers["concclient"] = concClient
}
