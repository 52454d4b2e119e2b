package main

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
)

// childEnv is set by machping in the children it starts (self-test, bench): a child exits when
// its stdin closes, so that it never outlives its parent.
const childEnv = "MACHPING_CHILD"

func init() {
	register(&command{
		name:    "serve",
		args:    "[--raw] [--pid] [-q] [--require EXPR] NAME",
		summary: "serve an echo service under NAME until Ctrl-C",
		detail: `Serves a CFMessagePort echo service (any msgid; the reply is the request's data), or with
--raw the raw mach echo protocol (a message with a send-once reply right comes back with the
same msgh_id and data). Each request is logged with the sender's pid and uid. Ctrl-C (or
SIGTERM) withdraws the name and exits 0; a name that cannot be registered exits with the
status of its cause (4 refused, 5 invalid, ...). Messages that are not requests are dropped
(reported on stderr) and serving goes on; a server whose port is destroyed exits 2.

With --require EXPR, a request from a process that fails EXPR is dropped before it is served
(the client gets no reply), counted and logged on stderr with the predicate it failed; the
"withdrawn" line counts them (with --raw too, whose client learns at once that its request was
dropped). ` + requireSyntax,
		examples: []string{
			"machping serve com.example.echo",
			"machping serve --raw --pid com.example.echo",
			"machping serve --json group.com.example.app.echo",
			"machping serve --require 'uid=501; exe=/usr/local/bin/client' com.example.echo",
		},
		flags: serveFlags,
	})
}

// The JSON events of serve, one per line.
type (
	servingEvent struct {
		header
		Event    string `json:"event"` // "serving"
		Name     string `json:"name"`
		Protocol string `json:"protocol"` // "cfmessageport" or "raw"
		PerPID   bool   `json:"per_pid"`
		PID      int    `json:"pid"` // this server's
		UID      int    `json:"uid"`
	}
	requestEvent struct {
		header
		Event     string `json:"event"` // "request"
		PID       int    `json:"pid"`   // the sender's, from the message's audit trailer
		UID       uint32 `json:"uid"`   // the sender's effective uid
		MsgID     int32  `json:"msgid"`
		Bytes     int    `json:"bytes"`
		OutOfLine bool   `json:"out_of_line"`
		OneWay    bool   `json:"one_way"`
	}
	withdrawnEvent struct {
		header
		Event    string `json:"event"` // "withdrawn"
		Name     string `json:"name"`
		Requests uint64 `json:"requests"`
		Dropped  uint64 `json:"dropped"` // messages dropped unserved: failing --require, or malformed
	}
)

func serveFlags(fs *flag.FlagSet, o *output) func(context.Context, []string) int {
	raw := fs.Bool("raw", false, "serve the raw mach echo protocol instead of CFMessagePort")
	perPID := fs.Bool("pid", false, "register a per-PID service (clients use 'ping --pid <this pid>')")
	quiet := fs.Bool("q", false, "do not log each request")
	requireExpr := fs.String("require", "", "serve only clients that meet `EXPR` (see above)")
	return func(ctx context.Context, args []string) int {
		switch {
		case len(args) != 1:
			return o.usageError("serve needs exactly one NAME, got %d arguments", len(args))
		}
		name := args[0]
		req, code, ok := optionalRequire(o, *requireExpr)
		if !ok {
			return code
		}
		if req != nil {
			defer req.Close()
		}
		var dropped func() uint64
		if os.Getenv(childEnv) != "" {
			ctx = untilStdinCloses(ctx)
		}
		var served atomic.Uint64
		logRequest := func(e requestEvent) {
			served.Add(1)
			if *quiet {
				return
			}
			e.header, e.Event = newHeader("serve"), "request"
			if o.json {
				o.emit(e, 0)
				return
			}
			how := "inline"
			if e.OutOfLine {
				how = "out-of-line"
			}
			oneWay := ""
			if e.OneWay {
				oneWay = ", one-way"
			}
			o.printf("request from pid %d (uid %d): msgid %d, %d bytes %s%s\n", e.PID, e.UID, e.MsgID, e.Bytes, how, oneWay)
		}
		protocol := "cfmessageport"
		var stop func() error
		var ended <-chan struct{} // closed when the server stops on its own: its port is gone
		var endErr func() error
		if *raw {
			protocol = "raw"
			port, err := mach.NewPort(mach.PortOptions{})
			if err != nil {
				return o.fail(diagnose(err, "serve", name, 0), exitFor(err))
			}
			reg, err := bootstrap.Register(name, port, &bootstrap.Options{PerPID: *perPID})
			if err != nil {
				port.Close()
				return o.fail(diagnose(err, "serve", name, 0), exitFor(err))
			}
			done := make(chan struct{})
			var serveErr error
			drops := &dropLog{o: o}
			go func() {
				defer close(done)
				serveErr = rawServe(reg.Port(), req, func(r rawRequest) {
					logRequest(requestEvent{PID: r.sender.PID(), UID: r.sender.EUID(), MsgID: r.id, Bytes: r.bytes,
						OutOfLine: r.outOfLine, OneWay: r.oneWay})
				}, drops.drop)
			}()
			ended, endErr = done, func() error { return serveErr }
			dropped = drops.count
			stop = func() error {
				err := reg.Close() // ends rawServe
				<-done
				return err
			}
		} else {
			handler := cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
				logRequest(requestEvent{PID: req.Sender.PID(), UID: req.Sender.EUID(), MsgID: req.MsgID,
					Bytes: len(req.Data), OutOfLine: !wire.Inline(len(req.Data)), OneWay: req.OneWay})
				return req.Data, nil
			})
			srv, err := cfmessageport.Listen(name, handler, &cfmessageport.ServerOptions{PerPID: *perPID,
				ErrorLog: slog.New(slog.NewTextHandler(stderrWriter{o}, nil)), Require: req})
			if err != nil {
				return o.fail(diagnose(err, "serve", name, 0), exitFor(err))
			}
			stop, ended, endErr, dropped = srv.Close, srv.Done(), srv.Err, srv.Dropped
		}

		ev := servingEvent{header: newHeader("serve"), Event: "serving", Name: name, Protocol: protocol,
			PerPID: *perPID, PID: os.Getpid(), UID: os.Geteuid()}
		if o.json {
			o.emit(ev, 0)
		} else {
			o.printf("serving %s (%s echo) as pid %d, uid %d; Ctrl-C withdraws the name\n", name, protocolTitle(protocol), ev.PID, ev.UID)
			if req != nil {
				o.printf("serving only clients that meet %s\n", req)
			}
			if *perPID {
				ping := []string{"ping", "--pid", strconv.Itoa(ev.PID), name}
				if *raw {
					ping = append([]string{"ping", "--raw"}, ping[1:]...)
				}
				o.printf("per-PID service; reach it with: %s\n", shellCommand(ping...))
			}
		}
		select {
		case <-ctx.Done():
		case <-ended:
			err := endErr()
			_ = stop()
			return o.fail(diagnose(err, "serve", name, 0), exitError)
		}
		if err := stop(); err != nil {
			return o.fail(diagnose(err, "withdraw", name, 0), exitError)
		}
		if o.json {
			return o.emit(withdrawnEvent{header: newHeader("serve"), Event: "withdrawn", Name: name, Requests: served.Load(),
				Dropped: dropped()}, exitOK)
		}
		if n := dropped(); n > 0 {
			o.printf("withdrew %s after %d requests (%d messages dropped unserved)\n", name, served.Load(), n)
		} else {
			o.printf("withdrew %s after %d requests\n", name, served.Load())
		}
		return exitOK
	}
}

func protocolTitle(p string) string {
	if p == "raw" {
		return "raw mach"
	}
	return "CFMessagePort"
}

// stderrWriter writes a server's log lines to stderr, between the other lines of the output.
type stderrWriter struct{ o *output }

func (w stderrWriter) Write(p []byte) (int, error) {
	w.o.progress("%s", p)
	return len(p), nil
}

// untilStdinCloses returns a context that also ends when stdin reaches end of file.
func untilStdinCloses(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return ctx
}
