//go:build !linux

package mach_test

import (
	"testing"
	"time"
)

func directWaits() uint64 { return 0 }

// waitBlocked gives a receive time to block in mach_msg.
func waitBlocked(t *testing.T, _ uint64) { time.Sleep(50 * time.Millisecond) }
