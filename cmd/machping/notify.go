package main

import (
	"context"
	"errors"
	"flag"
	"strconv"
	"time"

	"github.com/machport/machport/notify"
)

// machping notify: notifyutil's everyday jobs (-p, -w/-1, -g/-s) through package notify.

func init() {
	register(&command{
		name:    "notify",
		args:    "post NAME | watch [-n COUNT] NAME | state NAME [VALUE]",
		summary: "post or watch a Darwin notification (notify(3)), or read or set its state",
		detail: `post: posts NAME (notify_post), as 'notifyutil -p NAME'.
watch: registers NAME on a Mach port and prints one line per delivery, with the time it arrived
and the name's state read then, until Ctrl-C (or COUNT deliveries with -n), as 'notifyutil -w'.
A delivery means "posted at least once since the last one": posts that arrive while the port's
queue is full, or while the last delivery is being printed, are merged into one.
state: prints NAME's 64-bit state (notify_get_state), or with VALUE sets it (notify_set_state;
that posts nothing: follow with post), as 'notifyutil -g' and '-s'.
On macOS and iOS this is notifyd; on Linux the emulated center shared by this user's processes.
With --json: post and state print one document ({"action", "name", "state"}); watch prints one
object per line: {"event":"watching"} once registered, then {"event":"delivery", "name",
"token", "time", "state"} for each delivery. Exit status 0, or 2 on a failure.`,
		examples: []string{
			"machping notify post com.example.app.changed",
			"machping notify watch com.apple.system.timezone",
			"machping --json notify watch -n 1 com.example.app.changed",
			"machping notify state com.example.app.changed 42",
		},
		flags: notifyFlags,
	})
}

// notifyDoc is the document of notify post and notify state.
type notifyDoc struct {
	header
	Action string  `json:"action"` // "post" or "state"
	Name   string  `json:"name"`
	State  *uint64 `json:"state,omitempty"`
}

// notifyEvent is one line of notify watch --json.
type notifyEvent struct {
	header
	Event string    `json:"event"` // "watching" or "delivery"
	Name  string    `json:"name"`
	Token int32     `json:"token,omitempty"`
	Time  time.Time `json:"time,omitzero"`
	State uint64    `json:"state"`
}

func notifyFlags(fs *flag.FlagSet, o *output) func(context.Context, []string) int {
	count := fs.Int("n", 0, "watch: stop after `COUNT` deliveries (0: until Ctrl-C)")
	return func(ctx context.Context, args []string) int {
		if len(args) == 0 {
			return o.usageError("notify needs post, watch or state, and a NAME")
		}
		verb, args := args[0], args[1:]
		switch {
		case verb == "post" && len(args) == 1:
			return notifyPost(o, args[0])
		case verb == "watch" && len(args) == 1:
			if *count < 0 {
				return o.usageError("-n must be 0 or more")
			}
			return notifyWatch(ctx, o, args[0], *count)
		case verb == "state" && (len(args) == 1 || len(args) == 2):
			return notifyState(o, args)
		case verb == "post" || verb == "watch" || verb == "state":
			return o.usageError("notify %s: wrong number of arguments", verb)
		}
		return o.usageError("notify: unknown action %q (post, watch or state)", verb)
	}
}

func notifyFail(o *output, what string, err error) int {
	return o.fail(diagnosis{Message: what, Cause: err.Error()}, exitError)
}

func notifyPost(o *output, name string) int {
	if err := notify.Post(name); err != nil {
		return notifyFail(o, "cannot post "+strconv.Quote(name), err)
	}
	if o.json {
		return o.emit(notifyDoc{header: newHeader("notify"), Action: "post", Name: name}, exitOK)
	}
	o.printf("posted %s\n", name)
	return exitOK
}

func notifyState(o *output, args []string) int {
	name := args[0]
	reg, err := notify.RegisterCheck(name)
	if err != nil {
		return notifyFail(o, "cannot register "+strconv.Quote(name), err)
	}
	defer reg.Cancel()
	if len(args) == 2 {
		v, err := strconv.ParseUint(args[1], 0, 64)
		if err != nil {
			return o.usageError("notify state: VALUE must be an unsigned 64-bit integer, not %q", args[1])
		}
		if err := reg.SetState(v); err != nil {
			return notifyFail(o, "cannot set the state of "+strconv.Quote(name), err)
		}
	}
	v, err := reg.State()
	if err != nil {
		return notifyFail(o, "cannot read the state of "+strconv.Quote(name), err)
	}
	if o.json {
		return o.emit(notifyDoc{header: newHeader("notify"), Action: "state", Name: name, State: &v}, exitOK)
	}
	o.printf("%s %d\n", name, v)
	return exitOK
}

// notifyWatch prints each delivery until ctx ends (Ctrl-C: exit 0) or count deliveries came.
func notifyWatch(ctx context.Context, o *output, name string, count int) int {
	sub, err := notify.Watch(ctx, name)
	if err != nil {
		return notifyFail(o, "cannot watch "+strconv.Quote(name), err)
	}
	defer sub.Cancel()
	if o.json {
		o.emit(notifyEvent{header: newHeader("notify"), Event: "watching", Name: name}, exitOK)
	} else {
		o.progress("watching %s (Ctrl-C ends)\n", name)
	}
	for n := 0; count == 0 || n < count; n++ {
		d, ok := <-sub.C()
		if !ok {
			return exitOK // ctx ended: Ctrl-C
		}
		st, err := sub.State()
		if err != nil && !errors.Is(err, notify.StatusInvalidToken) {
			return notifyFail(o, "cannot read the state of "+strconv.Quote(name), err)
		}
		if o.json {
			o.emit(notifyEvent{header: newHeader("notify"), Event: "delivery", Name: d.Name, Token: d.Token, Time: d.Time.UTC(), State: st}, exitOK)
		} else {
			o.printf("%s %s state=%d\n", d.Time.UTC().Format(time.RFC3339Nano), d.Name, st)
		}
	}
	return exitOK
}
