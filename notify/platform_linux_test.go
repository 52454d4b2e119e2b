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

// accounted: every post the watcher's process received is a delivery, a delivery merged into a
// waiting one, or a message the center dropped on the full port. Posts are accounted for exactly
// when these add up to their number.
func accounted(w *watcher, want uint64) bool {
	return uint64(w.deliveries)+w.sub.Coalesced()+notify.DroppedForToken(w.sub.Token()) >= want
}

// exactAccount: the emulation shows every drop, so a watcher's account of the posts is exact.
const exactAccount = true
