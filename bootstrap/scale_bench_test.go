package bootstrap_test

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// scaleEnv makes TestScaleNames fail when the process cannot register what issue 18's Targets
// ask. Before that transport redesign the emulation cannot (about 12 fds per name), so
// without it the test only logs how far it got: .ci/bench runs it, and internal/benchreport puts
// the figure in its table. Once the redesign lands it is to run without it.
const scaleEnv = "MACHPORT_SCALE"

// TestScaleNames registers 10,000 names in one process, each for a port of its own, and looks
// the first and the last up. Issue 18's target: 10,000 names work within the default fd limit,
// or Register says which limit it hit. Before the redesign the emulation stops near 1,665
// (EMFILE): the test logs how many it registered and the error, and fails only with
// MACHPORT_SCALE=1.
func TestScaleNames(t *testing.T) {
	leakcheck.Check(t)
	const want, slack = 10_000, 64
	ctx := ctxTimeout(t, time.Minute)
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
	if os.Getenv(scaleEnv) == "1" && len(regs) < want {
		t.Fatalf("names: %d of %d: %v", len(regs), want, err)
	}
	// The names registered can be looked up, the first as well as the last. A run stopped by the
	// fd limit first withdraws its last names, for the fds a look-up needs.
	if len(regs) < want {
		for _, r := range regs[max(len(regs)-slack, 1):] {
			r.Close()
		}
		regs = regs[:max(len(regs)-slack, 1)]
	}
	for _, r := range []*bootstrap.Registration{regs[0], regs[len(regs)-1]} {
		s, err := bootstrap.LookUp(ctx, r.Name())
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
}
