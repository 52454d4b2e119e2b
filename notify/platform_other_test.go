//go:build !linux

package notify_test

import "fmt"

// On macOS notifyd's drops are not visible: a watcher has accounted for N posts when it has
// read state N at a delivery (the posters set state i before post i).
func childInfo() string { return "-" }

func dropInfo(int32) string { return "0 0" }

func account(w *watcher) uint64 { return lastState(w) }

func accounted(w *watcher, want uint64) bool { return account(w) >= want }

func givenUp() uint64 { return 0 }

func diagWatcher(w *watcher) string {
	return fmt.Sprintf("token %d: %d delivered, %d merged, last state %d", w.sub.Token(), w.deliveries, w.sub.Coalesced(), lastState(w))
}

// exactAccount: notifyd's drops are not visible here.
const exactAccount = false
