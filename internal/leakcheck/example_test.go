package leakcheck_test

import (
	"testing"

	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
)

func TestCheckPassesWhenAllIsClosed(t *testing.T) {
	leakcheck.Check(t)
	r, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.Close()
}

func TestCountsSeeAPort(t *testing.T) {
	before := leakcheck.Names(t)
	r, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if leakcheck.Names(t) != before+1 {
		t.Errorf("a new port is not counted")
	}
	_ = r.Close()
}

func Example() {
	// In a test: leakcheck.Check(t) first; the counts are compared at cleanup.
	_ = leakcheck.Check
}
