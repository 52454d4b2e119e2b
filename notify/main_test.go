package notify_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/notify"
)

// extraRoles holds the child roles of platform-only test files, added in their init.
var extraRoles = map[string]func(name string) error{}

func TestMain(m *testing.M) {
	roles := map[string]func(string) error{
		"watch": childWatch,
		"post":  childPost,
		"state": childState,
	}
	for role, run := range extraRoles {
		roles[role] = run
	}
	testproc.Main(m, roles)
}

func uniqueName(t testing.TB) string { return testproc.UniqueName(t, "com.machport.test.notify") }

// watcher follows one subscription, reading the name's state at each delivery, as a program
// that uses notify should (a delivery says "posted at least once").
type watcher struct {
	sub *notify.Subscription

	mu         sync.Mutex
	deliveries int
	states     []uint64
}

func newWatcher(sub *notify.Subscription) *watcher {
	w := &watcher{sub: sub}
	go func() {
		for range sub.C() {
			st, _ := sub.State()
			w.mu.Lock()
			w.deliveries++
			w.states = append(w.states, st)
			w.mu.Unlock()
		}
	}()
	return w
}

// stallLimit is how long the watching child waits without any watcher's account moving before
// it gives up and reports what it has. It is well under the 20 s the parent waits for a line
// (testproc.Child.Line), so that the parent always hears the account rather than a silence.
const stallLimit = 5 * time.Second

// afterLook, when set (by TestWaitAccountedSeesADropThatWakesNothing), runs after each look
// waitAccounted takes at the accounts.
var afterLook func()

// waitAccounted waits until every watcher has accounted for want posts (accounted), and reports
// whether they did. It polls: a post may be accounted for by a merge into a waiting delivery or
// by a message the full shared port refused, which change no watcher's deliveries and so wake
// nothing; a wait woken by deliveries alone could sleep through the last of them. Under load the
// account comes late but keeps moving; a lost post stops it short for good: so it gives up only
// when no watcher's account moved for stall.
func waitAccounted(ws []*watcher, want uint64, stall time.Duration) bool {
	var last uint64
	moved := time.Now()
	for {
		all, sum := true, uint64(0)
		for _, w := range ws {
			w.mu.Lock()
			all = all && accounted(w, want)
			sum += account(w) + uint64(w.deliveries)
			w.mu.Unlock()
		}
		if afterLook != nil {
			afterLook()
		}
		switch {
		case all:
			return true
		case sum != last:
			last, moved = sum, time.Now()
		case time.Since(moved) > stall:
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

func lastState(w *watcher) uint64 {
	if len(w.states) == 0 {
		return 0
	}
	return w.states[len(w.states)-1]
}

// childWatch: W subscriptions on name (env WATCHERS, default 1); prints "ready", then for each
// line "final N" from stdin waits until every watcher has accounted for N posts (waitAccounted),
// or no account moved for stallLimit, and prints one line per watcher: "deliveries coalesced
// token monotonic lastState queueDrops socketDrops" (the drops as the platform can see them).
func childWatch(name string) error {
	n := 1
	if s := os.Getenv("WATCHERS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	var ws []*watcher
	for range n {
		sub, err := notify.Watch(context.Background(), name)
		if err != nil {
			return err
		}
		defer sub.Cancel()
		ws = append(ws, newWatcher(sub))
	}
	fmt.Println("ready " + childInfo())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) != 2 || f[0] != "final" {
			continue
		}
		want, _ := strconv.ParseUint(f[1], 10, 64)
		if !waitAccounted(ws, want, stallLimit) {
			// The parent's checks will say which account fell short; this says what each
			// watcher saw, what the center handled and dropped for it, and what the shared
			// port still holds: where a missing post stopped.
			for _, w := range ws {
				w.mu.Lock()
				fmt.Fprintf(os.Stderr, "child %d: no account moved for %v short of %d posts: %s\n", os.Getpid(), stallLimit, want, diagWatcher(w))
				w.mu.Unlock()
			}
		}
		for _, w := range ws {
			w.mu.Lock()
			mono := true
			for i := 1; i < len(w.states); i++ {
				mono = mono && w.states[i] >= w.states[i-1]
			}
			fmt.Printf("%d %d %d %v %d %s\n", w.deliveries, w.sub.Coalesced(), w.sub.Token(), mono, lastState(w), dropInfo(w.sub.Token()))
			w.mu.Unlock()
		}
	}
	return nil
}

// childPost posts name once per line of stdin and answers "posted".
func childPost(name string) error {
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	for in.Scan() {
		if err := notify.Post(name); err != nil {
			return err
		}
		fmt.Println("posted")
	}
	return nil
}

// childState: "set V" sets name's state, "get" prints it.
func childState(name string) error {
	reg, err := notify.RegisterCheck(name)
	if err != nil {
		return err
	}
	defer reg.Cancel()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 2 && f[0] == "set":
			v, _ := strconv.ParseUint(f[1], 10, 64)
			if err := reg.SetState(v); err != nil {
				return err
			}
			fmt.Println("set")
		case len(f) == 1 && f[0] == "get":
			v, err := reg.State()
			if err != nil {
				return err
			}
			fmt.Println(v)
		}
	}
	return nil
}
