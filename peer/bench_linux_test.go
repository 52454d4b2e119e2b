package peer

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCheck measures one check of this process's token: a uid (a comparison), and an
// executable once its verdict is cached (the start time, the cache
// key, spared by the pidfd kept on the process: a poll) and without its verdict (the full
// look-up: exe, status, stat).
func BenchmarkCheck(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		b.Fatal(err)
	}
	tok := token(os.Getpid(), uint32(os.Geteuid()), uint32(os.Getegid()))
	for _, bc := range []struct {
		name     string
		pred     Predicate
		uncached bool
	}{
		{"uid", UID(uint32(os.Geteuid())), false},
		{"exe-cached", Executable(exe), false},
		{"exe-uncached", Executable(exe), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, err := New(bc.pred)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			for b.Loop() {
				if bc.uncached {
					r.mu.Lock()
					clear(r.cache)
					r.mu.Unlock()
				}
				if err := r.Check(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
