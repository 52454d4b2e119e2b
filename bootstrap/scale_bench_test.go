package bootstrap_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// TestScaleNames registers 10,000 names in one process, each for a port of its own, and looks
// the first and the last up: issue 18's target, 10,000 names within the default fd limit (on
// Linux a name holds no descriptor of its own, TestFDsPerServedName, and neither does the send
// right the namespace keeps of its port). It logs how many it registered ("SCALE names: N of M",
// which .ci/bench reports) before it fails short of them.
func TestScaleNames(t *testing.T) {
	leakcheck.Check(t)
	const want = 10_000
	base := uniqueName(t)
	var regs []*bootstrap.Registration
	defer func() {
		for _, r := range regs {
			r.Close()
		}
	}()
	var err error
	for len(regs) < want {
		var port *mach.ReceiveRight
		if port, err = mach.NewPort(mach.PortOptions{}); err != nil {
			break
		}
		var reg *bootstrap.Registration
		if reg, err = bootstrap.Register(fmt.Sprintf("%s.%d", base, len(regs)), port, nil); err != nil {
			port.Close()
			break
		}
		regs = append(regs, reg)
	}
	t.Logf("SCALE names: %d of %d (stopped by: %v)", len(regs), want, err)
	require.Equal(t, want, len(regs), "names registered: %v", err)
	// The look-ups' own minute: under load (and -race) the registrations above took longer
	// than that, and a context made before them had expired when the look-ups began.
	ctx := ctxTimeout(t, time.Minute)
	for _, r := range []*bootstrap.Registration{regs[0], regs[len(regs)-1]} {
		s, err := bootstrap.LookUp(ctx, r.Name())
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
}
