//go:build linux

package mach_test

// migReplyPorts is how many port names new threads may add: none in the emulation.
func migReplyPorts(newThreads int) int { return 0 }
