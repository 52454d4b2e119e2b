//go:build !linux

package mach_test

import (
	"testing"
	"time"

	"github.com/machport/machport/mach"
)

func directWaits() uint64 { return 0 }

// waitBlocked gives a receive time to block in mach_msg.
func waitBlocked(t *testing.T, _ *mach.ReceiveRight, _ uint64) { time.Sleep(50 * time.Millisecond) }

// blockedWaits is the one way a receive blocks in mach_msg.
var blockedWaits = []struct {
	name        string
	prepare     func(t *testing.T, s *mach.SendRight)
	waitBlocked func(t *testing.T, r *mach.ReceiveRight, before uint64)
}{{"mach_msg", func(*testing.T, *mach.SendRight) {}, waitBlocked}}
