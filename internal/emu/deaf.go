//go:build linux

package emu

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// deafChecks counts the calls of sigurgDeaf: each is a wake-up signal sequence that went
// unanswered for directResignals signals, for tests.
var deafChecks atomic.Uint64

// sigurgDeaf reports whether thread tid cannot answer SIGURG: the process ignores it or the
// thread blocks it (SigIgn, SigBlk in /proc/self/task/TID/status; proc(5)). Only then do the
// signals that wakeDirect and interrupt send go unanswered for good. A thread that can take
// the signal but has not answered yet is slow to run (on a loaded machine a woken thread can
// wait tens of milliseconds for a CPU), and is signalled on: turning direct waits off for the
// process then (directOff) would be for nothing, and for good. When the file cannot be read,
// the thread counts as deaf, as every unanswered thread did before.
func sigurgDeaf(tid int) bool {
	deafChecks.Add(1)
	status, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return true
	}
	bit := uint64(1) << (unix.SIGURG - 1)
	seen := 0
	for line := range strings.SplitSeq(string(status), "\n") {
		name, value, _ := strings.Cut(line, ":")
		if name != "SigIgn" && name != "SigBlk" {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(value), 16, 64)
		if err != nil || mask&bit != 0 {
			return true
		}
		seen++
	}
	return seen < 2
}
