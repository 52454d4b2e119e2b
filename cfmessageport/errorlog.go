package cfmessageport

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/machport/machport/mach"
)

// logBurst is how many lines of one kind a server logs in a second; the rest are counted, and
// the next line of that kind logged says how many were left out. A peer flooding a server with
// malformed messages must not flood its log too.
const logBurst = 10

// The kinds of line a server logs, each limited on its own.
const (
	logDropped = iota
	logHandlerError
	logPanic
	logReply
	logReceive
	logKinds
)

// errorLog is a server's ServerOptions.ErrorLog, rate-limited by kind.
type errorLog struct {
	log  *slog.Logger
	name string
	now  func() time.Time // time.Now; a test's clock

	mu      sync.Mutex
	window  [logKinds]time.Time // start of the current one-second window
	logged  [logKinds]int       // lines logged in it
	skipped [logKinds]int       // lines left out since the last one logged
}

func newErrorLog(l *slog.Logger, name string) errorLog {
	return errorLog{log: l, name: name, now: time.Now}
}

// logger returns the logger in force: slog.Default() unless one was given (read at each line,
// as a program may set its default after Listen).
func (e *errorLog) logger() *slog.Logger {
	if e.log != nil {
		return e.log
	}
	return slog.Default()
}

// emit logs one line of a kind unless its budget for this second is spent.
func (e *errorLog) emit(kind int, level slog.Level, msg string, attrs ...slog.Attr) {
	now := e.now()
	e.mu.Lock()
	if now.Sub(e.window[kind]) >= time.Second {
		e.window[kind], e.logged[kind] = now, 0
	}
	if e.logged[kind] >= logBurst {
		e.skipped[kind]++
		e.mu.Unlock()
		return
	}
	e.logged[kind]++
	skipped := e.skipped[kind]
	e.skipped[kind] = 0
	e.mu.Unlock()
	attrs = append(attrs, slog.String("service", e.name))
	if skipped > 0 {
		attrs = append(attrs, slog.Int("suppressed", skipped))
	}
	e.logger().LogAttrs(context.Background(), level, msg, attrs...)
}

func (e *errorLog) dropped(why string, pid int, err error) {
	attrs := []slog.Attr{slog.String("reason", why)}
	if pid != 0 {
		attrs = append(attrs, slog.Int("pid", pid))
	}
	if err != nil {
		attrs = append(attrs, slog.Any("error", err))
	}
	e.emit(logDropped, slog.LevelWarn, "cfmessageport: dropped a message", attrs...)
}

func (e *errorLog) handlerFailed(req *Message, err error) {
	e.emit(logHandlerError, slog.LevelError, "cfmessageport: handler error",
		slog.Int("msgid", int(req.MsgID)), slog.Int("pid", req.Sender.PID()), slog.Any("error", err))
}

func (e *errorLog) panicked(req *Message, v any, stack []byte) {
	e.emit(logPanic, slog.LevelError, "cfmessageport: handler panicked",
		slog.Int("msgid", int(req.MsgID)), slog.Int("pid", req.Sender.PID()), slog.Any("panic", v),
		slog.String("stack", string(stack)))
}

// replyFailed logs a reply that could not be sent: a warning, but only a debug line when the
// requester is simply gone (MACH_SEND_INVALID_DEST), which is no fault of the server's.
func (e *errorLog) replyFailed(req *Message, err error) {
	level := slog.LevelWarn
	if errors.Is(err, mach.SendInvalidDest) {
		level = slog.LevelDebug
	}
	e.emit(logReply, level, "cfmessageport: reply not delivered",
		slog.Int("msgid", int(req.MsgID)), slog.Int("pid", req.Sender.PID()), slog.Any("error", err))
}

// replyTooLarge logs a handler's reply over MaxPayload, which goes out empty instead.
func (e *errorLog) replyTooLarge(req *Message, n int) {
	e.emit(logReply, slog.LevelWarn, "cfmessageport: reply larger than 1.5 GiB sent empty",
		slog.Int("msgid", int(req.MsgID)), slog.Int("pid", req.Sender.PID()), slog.Int("bytes", n))
}

func (e *errorLog) receiveFailed(err error, backoff time.Duration) {
	e.emit(logReceive, slog.LevelError, "cfmessageport: receive failed", slog.Any("error", err),
		slog.Duration("retry_in", backoff))
}

func (e *errorLog) stopped(err error) {
	e.logger().LogAttrs(context.Background(), slog.LevelError, "cfmessageport: server stopped: its port is gone",
		slog.String("service", e.name), slog.Any("error", err))
}
