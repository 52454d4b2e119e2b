package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/peer"
)

func init() {
	register(&command{
		name:    "ping",
		args:    "[-c count] [-i interval] [-s size] [-W timeout] [--raw] [--pid PID] [-q] [--require EXPR] NAME",
		summary: "send echo requests to a service and report round-trip times",
		detail: `Looks NAME up and sends it echo requests, CFMessagePort requests by default or raw mach
messages with --raw, one every interval (a reply that takes longer delays the next request),
printing a line per reply (with the replying server's pid and uid, from the reply's audit
trailer) and a summary with loss,
min/avg/max/mdev and the 50th and 99th percentiles. Payloads up to 4000 bytes travel inline,
larger ones out-of-line (as CF sends them). Without -c it runs until Ctrl-C; a request in
flight then counts as transmitted and lost, as in ping(8).

With --require EXPR, every reply's sender (from its audit trailer) must meet EXPR: the first
reply from a server that fails it is not trusted, the run stops, and the predicate it failed is
reported (a process that registered the name before the real server is caught so), with --raw
as without. ` + requireSyntax + `

Exit status: 0 when every reply came, 1 when some were lost (timeouts, a reply that differs,
or the server died mid-run), 4 when the server fails --require; when the service could not be
pinged at all, the cause's status as lookup gives it: 3 no live server has the name (1102),
4 the sandbox refuses it (1100), 5 an invalid name, 2 bad arguments (a bad EXPR among them) or
another failure ('machping help' lists them). Durations are seconds ("0.2") or Go durations
("200ms").`,
		examples: []string{
			"machping ping -c 5 com.example.echo",
			"machping ping -c 100 -i 0 -s 65536 com.example.echo",
			"machping ping --raw --pid 4242 -c 3 com.example.echo",
			"machping ping --json -c 10 -i 10ms com.example.echo",
			"machping ping --require 'uid=0; exe=/usr/local/libexec/echod' com.example.echo",
		},
		flags: pingFlags,
	})
}

// pingDoc is ping's JSON document.
type pingDoc struct {
	header
	Name        string      `json:"name"`
	PID         int         `json:"pid,omitempty"` // for a per-PID service
	Protocol    string      `json:"protocol"`      // "cfmessageport" or "raw"
	Size        int         `json:"size"`
	OutOfLine   bool        `json:"out_of_line"`
	Replies     []pingReply `json:"replies"`
	Transmitted int         `json:"transmitted"`
	Received    int         `json:"received"`
	LossPercent float64     `json:"loss_percent"`
	RTT         summary     `json:"rtt"`
	Require     string      `json:"require,omitempty"`  // --require, as peer.Parse reads it
	Rejected    *rejection  `json:"rejected,omitempty"` // the server failed --require
	Failure     *diagnosis  `json:"failure,omitempty"`  // why the run stopped early (the server died)
	Hint        string      `json:"hint,omitempty"`     // when nothing came back: what to try
}

// pingReply is one request's outcome.
type pingReply struct {
	Seq    int     `json:"seq"`
	Bytes  int     `json:"bytes"`
	TimeMs float64 `json:"time_ms"`         // the round trip; 0 when lost
	From   *sender `json:"from,omitempty"`  // who sent the reply, from its audit trailer
	Error  string  `json:"error,omitempty"` // why the reply was lost
}

// rejection is a reply whose sender failed --require.
type rejection struct {
	Seq       int    `json:"seq"`       // the request whose reply was rejected
	PID       int    `json:"pid"`       // the replier's
	Predicate string `json:"predicate"` // the predicate it failed
	Got       string `json:"got,omitempty"`
}

// sender is a message's sender as the kernel vouches for it in the audit trailer.
type sender struct {
	PID int    `json:"pid"`
	UID uint32 `json:"uid"` // effective
}

// pinger sends one echo request and returns the reply's data and the audit token of its sender.
type pinger interface {
	ping(ctx context.Context, seq int32, data []byte) ([]byte, mach.AuditToken, error)
	close()
}

type cfPinger struct{ remote *cfmessageport.Remote }

func (p cfPinger) ping(ctx context.Context, seq int32, data []byte) ([]byte, mach.AuditToken, error) {
	return p.remote.RequestFrom(ctx, seq, data)
}
func (p cfPinger) close() { p.remote.Close() }

// rawPinger is a raw echo client; with require set, every reply's sender must meet it, as
// cfmessageport's DialOptions.Require checks a CFMessagePort server: the first reply that fails
// is an error wrapping cfmessageport.ErrPeerRejected and the *peer.CheckError, and so is every
// request after it (the server is never trusted again).
type rawPinger struct {
	c        *rawClient
	require  *peer.Requirement
	rejected error
}

func (p *rawPinger) ping(ctx context.Context, seq int32, data []byte) ([]byte, mach.AuditToken, error) {
	if p.rejected != nil {
		return nil, mach.AuditToken{}, p.rejected
	}
	got, err := p.c.request(ctx, seq, data)
	if err != nil {
		return nil, mach.AuditToken{}, err
	}
	from := p.c.in.Trailer.Audit // the reply stays in c.in until the next request
	if p.require != nil {
		if err := p.require.Check(from); err != nil {
			p.rejected = fmt.Errorf("%w: %w", cfmessageport.ErrPeerRejected, err)
			return nil, mach.AuditToken{}, p.rejected
		}
	}
	return got, from, nil
}
func (p *rawPinger) close() { p.c.close() }

// dialPinger looks the service up and returns a client for the protocol; req, when set, is what
// every reply's sender must meet.
func dialPinger(ctx context.Context, name string, pid int, raw bool, req *peer.Requirement) (pinger, error) {
	if req != nil && !raw {
		remote, err := cfmessageport.DialWithOptions(ctx, name, &cfmessageport.DialOptions{PID: pid, Require: req})
		if err != nil {
			return nil, err
		}
		return cfPinger{remote}, nil
	}
	right, err := lookUpRight(ctx, name, pid)
	if err != nil {
		return nil, err
	}
	if raw {
		c, err := newRawClient(right)
		if err != nil {
			return nil, err
		}
		return &rawPinger{c: c, require: req}, nil
	}
	remote, err := cfmessageport.NewRemote(name, right)
	if err != nil {
		return nil, err
	}
	return cfPinger{remote}, nil
}

func pingFlags(fs *flag.FlagSet, o *output) func(context.Context, []string) int {
	count := fs.Int("c", 0, "stop after `count` requests (0: until Ctrl-C)")
	interval := durationFlag(fs, "i", time.Second, "wait `interval` between requests")
	size := fs.Int("s", 56, "payload `size` in bytes (above 4000: out-of-line)")
	timeout := durationFlag(fs, "W", 2*time.Second, "wait at most `timeout` for each reply")
	raw := fs.Bool("raw", false, "use the raw mach echo protocol (for 'serve --raw')")
	pid := fs.Int("pid", 0, "ping the per-PID service of process `PID`")
	quiet := fs.Bool("q", false, "print only the summary")
	requireExpr := fs.String("require", "", "trust only a server that meets `EXPR` (see above)")
	return func(ctx context.Context, args []string) int {
		switch {
		case len(args) != 1:
			return o.usageError("ping needs exactly one NAME, got %d arguments", len(args))
		case *count < 0:
			return o.usageError("-c must not be negative")
		case *size < 0 || *size > wire.MaxPayload:
			return o.usageError("-s must be between 0 and %d", wire.MaxPayload)
		case *timeout <= 0:
			return o.usageError("-W must be positive")
		case *pid < 0:
			return o.usageError("--pid must be a process id (positive)")
		}
		name := args[0]
		req, code, ok := optionalRequire(o, *requireExpr)
		if !ok {
			return code
		}
		if req != nil {
			defer req.Close()
		}
		doc := runPing(ctx, o, pingParams{name: name, pid: *pid, raw: *raw, count: *count, interval: *interval,
			size: *size, timeout: *timeout, quiet: *quiet, require: req})
		return doc.exit(o)
	}
}

type pingParams struct {
	name     string
	pid      int
	raw      bool
	count    int
	interval time.Duration
	size     int
	timeout  time.Duration
	quiet    bool
	require  *peer.Requirement // nil: any server
}

// pingRun is a finished ping: its document, and the error that kept it from starting.
type pingRun struct {
	doc     pingDoc
	dialErr *diagnosis
	dialed  error // what dialErr explains
	// rejected is the error of a reply whose sender failed --require (exit status 4).
	rejected error
}

// exit prints what is left to print and gives the exit status.
func (r pingRun) exit(o *output) int {
	if r.dialErr != nil {
		return o.fail(*r.dialErr, exitFor(r.dialed))
	}
	code := exitOK
	switch {
	case r.rejected != nil:
		code = exitFor(r.rejected)
	case r.doc.Transmitted == 0 || r.doc.Received < r.doc.Transmitted:
		code = exitNegative
	}
	if o.json {
		return o.emit(r.doc, code)
	}
	if r.doc.Failure != nil {
		o.mu.Lock()
		r.doc.Failure.write(o.stderr, "machping: ")
		o.mu.Unlock()
	}
	return code
}

// runPing pings as p says, printing reply lines and the summary as it goes in text mode.
func runPing(ctx context.Context, o *output, p pingParams) pingRun {
	protocol := "cfmessageport"
	if p.raw {
		protocol = "raw"
	}
	doc := pingDoc{header: newHeader("ping"), Name: p.name, PID: p.pid, Protocol: protocol, Size: p.size,
		OutOfLine: !wire.Inline(p.size), Replies: []pingReply{}}
	if p.require != nil {
		doc.Require = p.require.Expr()
	}
	var rejected error
	// The look-up gets at least 5 s: -W is about replies, and a slow launchd is not a lost reply.
	lookCtx, cancel := context.WithTimeout(ctx, max(p.timeout, 5*time.Second))
	client, err := dialPinger(lookCtx, p.name, p.pid, p.raw, p.require)
	cancel()
	if err != nil {
		d := diagnose(err, "look up", p.name, p.pid)
		return pingRun{doc: doc, dialErr: &d, dialed: err}
	}
	defer client.close()

	how := "inline"
	if doc.OutOfLine {
		how = "out-of-line"
	}
	target := p.name
	if p.pid != 0 {
		target = fmt.Sprintf("%s (pid %d)", p.name, p.pid)
	}
	o.printf("PING %s (%s): %d data bytes, %s\n", target, protocolTitle(protocol), p.size, how)
	var rtts latencies
	data := make([]byte, p.size)
	var lastSent time.Time
	interrupted := false // the last request was in flight when Ctrl-C came
	for seq := 1; p.count == 0 || seq <= p.count; seq++ {
		// One request per interval, as ping(8) sends them: a slow reply or a timeout eats into
		// the wait rather than adding to it.
		if wait := p.interval - time.Since(lastSent); seq > 1 && wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		if ctx.Err() != nil {
			break
		}
		fillPattern(data, seq)
		reqCtx, cancel := context.WithTimeout(ctx, p.timeout)
		start := time.Now()
		lastSent = start
		got, from, err := client.ping(reqCtx, int32(seq), data)
		rtt := time.Since(start)
		cancel()
		doc.Transmitted++
		reply := pingReply{Seq: seq}
		if ctx.Err() != nil && err != nil {
			// Ctrl-C while the request was in flight: as ping(8), the probe was transmitted and
			// its reply lost, so that a run interrupted before its first reply shows 100% loss.
			reply.Error = "interrupted before the reply came"
			doc.Replies = append(doc.Replies, reply)
			interrupted = true
			break
		}
		var ce *peer.CheckError
		switch {
		case errors.Is(err, cfmessageport.ErrPeerRejected) && errors.As(err, &ce):
			// Checked before the server-death case: a rejection also invalidates the Remote.
			reply.Error = fmt.Sprintf("the reply from pid %d fails the requirement: %s", ce.PID, ce.Predicate)
			if ce.Got != "" {
				reply.Error += " (it has " + ce.Got + ")"
			}
			doc.Rejected = &rejection{Seq: seq, PID: ce.PID, Predicate: ce.Predicate, Got: ce.Got}
			rejected = err
		case err == nil && !bytes.Equal(got, data):
			reply.Bytes = len(got)
			reply.Error = fmt.Sprintf("the reply differs from the request (%d bytes back)", len(got))
		case err == nil:
			reply.Bytes, reply.TimeMs = len(got), millis(rtt)
			reply.From = &sender{PID: from.PID(), UID: from.EUID()}
			doc.Received++
			rtts.add(rtt)
		case errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
			reply.Error = fmt.Sprintf("no reply within %v", p.timeout)
		default:
			reply.Error = err.Error()
		}
		doc.Replies = append(doc.Replies, reply)
		if !p.quiet {
			if reply.Error == "" {
				o.printf("%d bytes from %s (pid %d, uid %d): seq=%d time=%.3f ms\n", reply.Bytes, p.name,
					reply.From.PID, reply.From.UID, seq, reply.TimeMs)
			} else {
				o.printf("seq=%d: %s\n", seq, reply.Error)
			}
		}
		if rejected != nil {
			doc.Failure = &diagnosis{Message: fmt.Sprintf("the server of %s (pid %d) fails the requirement: %s",
				p.name, doc.Rejected.PID, doc.Rejected.Predicate), Cause: err.Error(),
				Hints: []string{shellCommand("check-peer", strconv.Itoa(doc.Rejected.PID), doc.Require) +
					" shows every predicate's verdict on it"}}
			break
		}
		if isServerDeath(err) {
			d := diagnose(errServerDied, "ping", p.name, p.pid)
			d.Cause = err.Error()
			doc.Failure = &d
			break
		}
	}
	doc.RTT = rtts.summary()
	waited := doc.Transmitted // requests whose replies had their full chance to come
	if interrupted {
		waited-- // a reply Ctrl-C cut short says nothing about the protocol
	}
	if waited > 0 && doc.Received == 0 && doc.Failure == nil {
		// The usual causes: the server speaks the other protocol, and drops or ignores requests
		// it cannot parse, or answers in a shape this client drops; or (CFMessagePort) it drops
		// this client's requests because they fail its --require.
		if p.raw {
			doc.Hint = "if the server is a CFMessagePort service (not 'machping serve --raw'), ping it without --raw; " +
				"if it serves with --require, this process may fail it (the server logs the predicate; 'machping check-peer' checks one)"
		} else {
			// A server with --require drops the requests of clients that fail it, as silently.
			doc.Hint = "if the server speaks the raw echo protocol ('machping serve --raw'), ping it with --raw; " +
				"if it serves with --require, this process may fail it (the server logs the predicate; 'machping check-peer' checks one)"
		}
	}
	if doc.Transmitted > 0 {
		doc.LossPercent = round3(100 * float64(doc.Transmitted-doc.Received) / float64(doc.Transmitted))
	}
	o.printf("--- %s ping statistics ---\n", target)
	o.printf("%d requests transmitted, %d replies received, %.1f%% loss\n", doc.Transmitted, doc.Received, doc.LossPercent)
	if doc.Received > 0 {
		s := doc.RTT
		o.printf("round-trip min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms\n", s.Min, s.Avg, s.Max, s.Mdev)
		o.printf("round-trip p50/p99 = %.3f/%.3f ms\n", s.P50, s.P99)
	}
	if doc.Hint != "" {
		o.printf("hint: %s\n", doc.Hint)
	}
	return pingRun{doc: doc, rejected: rejected}
}

func isServerDeath(err error) bool {
	return errors.Is(err, errServerDied) || errors.Is(err, cfmessageport.ErrBecameInvalid) ||
		errors.Is(err, cfmessageport.ErrInvalid)
}

// fillPattern fills data with bytes that depend on seq, so that a reply to another request, or
// a reply that was not echoed faithfully, does not pass for the right one.
func fillPattern(data []byte, seq int) {
	for i := range data {
		data[i] = byte(seq*31 + i)
	}
}

// lookUpRight looks a global or per-PID name up.
func lookUpRight(ctx context.Context, name string, pid int) (*mach.SendRight, error) {
	if pid != 0 {
		return bootstrap.LookUpPID(ctx, name, pid)
	}
	return bootstrap.LookUp(ctx, name)
}

// durationFlag defines a flag that takes seconds ("0.2", as ping(8)) or a Go duration ("200ms").
func durationFlag(fs *flag.FlagSet, name string, value time.Duration, usage string) *time.Duration {
	d := &durationValue{value}
	fs.Var(d, name, usage)
	return &d.d
}

type durationValue struct{ d time.Duration }

// maxDurationSeconds is the longest duration a time.Duration holds, in whole seconds.
const maxDurationSeconds = float64(math.MaxInt64 / int64(time.Second))

func (v *durationValue) String() string { return v.d.String() }

func (v *durationValue) Set(s string) error {
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		switch {
		case math.IsNaN(secs) || math.IsInf(secs, 0):
			return errors.New("not a finite number of seconds")
		case secs < 0:
			return errors.New("negative duration")
		case secs > maxDurationSeconds:
			return fmt.Errorf("more than %d seconds", int64(maxDurationSeconds))
		}
		v.d = time.Duration(secs * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not seconds or a duration")
	}
	if d < 0 {
		return errors.New("negative duration")
	}
	v.d = d
	return nil
}
