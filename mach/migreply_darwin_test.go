//go:build darwin && !ios

package mach_test

// migReplyPorts is how many port names new threads may add: one MIG reply port each.
func migReplyPorts(newThreads int) int { return max(newThreads, 0) }
