//go:build !linux

package notify_test

// On macOS notifyd's drops are not visible: a watcher has accounted for N posts when it has
// read state N at a delivery (the posters set state i before post i).
func childInfo() string { return "-" }

func dropInfo(int32) string { return "0 0" }

func accounted(w *watcher, want uint64) bool { return lastState(w) >= want }

// exactAccount: notifyd's drops are not visible here.
const exactAccount = false
