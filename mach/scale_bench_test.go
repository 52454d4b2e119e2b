package mach_test

import (
	"context"
	"testing"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// scaleOutcome logs what a scale test reached, in the form internal/benchreport reads
// ("SCALE <what>: <got> of <want>"), and fails the test when got < want: issue 18's Targets are
// met (100,000 ports: a send right in its port's own process costs no fd).
func scaleOutcome(t *testing.T, what string, got, want int, err error) {
	t.Helper()
	t.Logf("SCALE %s: %d of %d (stopped by: %v)", what, got, want, err)
	if got < want {
		t.Fatalf("%s: %d of %d: %v", what, got, want, err)
	}
}

// TestScalePorts makes 100,000 ports in one process, each with a send right, and sends a message
// through the first and the last one made. Issue 18's target: a port that no other process holds
// costs no fd, so 100,000 work (the emulation used to stop near the fd limit, at about 3,300,
// with KERN_RESOURCE_SHORTAGE). The leak check finds every fd and name released at the end.
func TestScalePorts(t *testing.T) {
	checkLeaks(t)
	const want = 100_000
	ctx := context.Background()
	type pair struct {
		r *mach.ReceiveRight
		s *mach.SendRight
	}
	ports := make([]pair, 0, want)
	defer func() {
		for _, p := range ports {
			p.s.Close()
			p.r.Close()
		}
	}()
	var err error
	for len(ports) < want {
		var p pair
		if p.r, err = mach.NewPort(mach.PortOptions{}); err != nil {
			break
		}
		if p.s, err = p.r.MakeSend(); err != nil {
			p.r.Close()
			break
		}
		ports = append(ports, p)
	}
	scaleOutcome(t, "ports", len(ports), want, err)
	// The ports made work, the first as well as the last (each after the others exist).
	for _, p := range []pair{ports[0], ports[len(ports)-1]} {
		send(t, ctx, p.s, 1, []byte("still a port"))
		m := receive(t, ctx, p.r)
		require.Equal(t, []byte("still a port"), m.Body)
		require.NoError(t, m.Destroy())
	}
}
