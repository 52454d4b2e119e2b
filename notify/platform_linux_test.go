//go:build linux

package notify_test

import (
	"fmt"

	"github.com/machport/machport/notify"
)

// childInfo is what a watching child says after "ready": its agent's socket.
func childInfo() string { return notify.AgentPath() }

// dropInfo is what the emulated center dropped for token (its port's queue was full) and the
// posts this process gave up on a stuck agent.
func dropInfo(tok int32) string {
	return fmt.Sprintf("%d %d", notify.DroppedForToken(tok), notify.SocketDrops())
}

// account is how many posts the watcher's process has accounted for: deliveries, deliveries
// merged into a waiting one, and messages the center dropped on the full port. Only the first
// is a delivery that wakes the watcher; the others change in the dispatcher and in the center.
func account(w *watcher) uint64 {
	return uint64(w.deliveries) + w.sub.Coalesced() + notify.DroppedForToken(w.sub.Token())
}

// accounted: every post the watcher's process received is a delivery, a delivery merged into a
// waiting one, or a message the center dropped on the full port. Posts are accounted for exactly
// when these add up to their number.
func accounted(w *watcher, want uint64) bool { return account(w) >= want }

// exactAccount: the emulation shows every drop, so a watcher's account of the posts is exact.
const exactAccount = true

// givenUp is how many posts this process gave up on an agent whose socket stayed full.
func givenUp() uint64 { return notify.SocketDrops() }

// diagWatcher is what a watching child says of a watcher whose account stopped short: its
// account, what the center handled for it, and what the shared port still holds.
func diagWatcher(w *watcher) string {
	st, err := w.sub.Port().Right().Status()
	return fmt.Sprintf("token %d: %d delivered, %d merged, %d dropped, %d handled by the center, last state %d, %d waiting on C, %d queued on the port (%v)",
		w.sub.Token(), w.deliveries, w.sub.Coalesced(), notify.DroppedForToken(w.sub.Token()), notify.Handled(w.sub.Token()),
		lastState(w), len(w.sub.C()), st.MessageCount, err)
}
