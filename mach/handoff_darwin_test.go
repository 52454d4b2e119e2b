//go:build darwin && !ios

package mach_test

import (
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"

	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

const serviceEnv = "MACHPORT_TEST_SERVICE"

var serviceSeq atomic.Int64

// handOff registers the send right under a unique bootstrap name the peer looks up. The name
// disappears when the port's receive right dies.
func handOff(t testing.TB, cmd *exec.Cmd, s *mach.SendRight) func() {
	require.NoError(t, darwin.Load())
	name := fmt.Sprintf("com.machport.test.%d.%d", os.Getpid(), serviceSeq.Add(1))
	kr := darwin.BootstrapRegister2(darwin.BootstrapPort(), name, uint32(s.Name()), 0)
	require.Zero(t, kr, "bootstrap_register2(%s): %v", name, mach.KernReturn(kr))
	cmd.Env = append(cmd.Env, serviceEnv+"="+name)
	return func() {}
}

func acceptHandOff() (*mach.SendRight, error) {
	if err := darwin.Load(); err != nil {
		return nil, err
	}
	var port uint32
	if kr := darwin.BootstrapLookUp(darwin.BootstrapPort(), os.Getenv(serviceEnv), &port); kr != 0 {
		return nil, fmt.Errorf("bootstrap_look_up(%s): %d", os.Getenv(serviceEnv), kr)
	}
	return mach.AdoptSend(mach.Name(port)), nil
}
