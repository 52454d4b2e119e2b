//go:build darwin && !ios

package mach_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

const serviceEnv = "MACHPORT_TEST_SERVICE"

var serviceSeq atomic.Int64

// handOff gives the peer a send right through launchd without leaving launchd a send right to
// the port itself (which would keep no-senders from ever firing): a private hand-off port is
// registered under a unique name, the peer asks it for the right, and the hand-off port is then
// destroyed, which withdraws the name.
func handOff(t testing.TB, cmd *exec.Cmd, s *mach.SendRight) func() {
	require.NoError(t, darwin.Load())
	h, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	hs, err := h.MakeSend()
	require.NoError(t, err)
	name := fmt.Sprintf("com.machport.test.%d.%d", os.Getpid(), serviceSeq.Add(1))
	kr := darwin.BootstrapRegister2(darwin.BootstrapPort(), name, uint32(hs.Name()), 0)
	require.Zero(t, kr, "bootstrap_register2(%s): %v", name, mach.KernReturn(kr))
	require.NoError(t, hs.Close())
	cmd.Env = append(cmd.Env, serviceEnv+"="+name)
	return func() {
		defer h.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var req mach.Message
		require.NoError(t, mach.Receive(ctx, h, &req))
		reply, ok := req.TakeRemote().(*mach.SendOnceRight)
		require.True(t, ok, "the hand-off request carries a reply right")
		require.NoError(t, req.Destroy())
		require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOnceOf(reply),
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.CopySendOf(s)}}}))
	}
}

func acceptHandOff() (*mach.SendRight, error) {
	if err := darwin.Load(); err != nil {
		return nil, err
	}
	var port uint32
	if kr := darwin.BootstrapLookUp(darwin.BootstrapPort(), os.Getenv(serviceEnv), &port); kr != 0 {
		return nil, fmt.Errorf("bootstrap_look_up(%s): %d", os.Getenv(serviceEnv), kr)
	}
	h := mach.AdoptSend(mach.Name(port))
	defer h.Close()
	reply, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return nil, err
	}
	defer reply.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(h), Local: mach.MakeSendOnceOf(reply)}); err != nil {
		return nil, err
	}
	var m mach.Message
	if err := mach.Receive(ctx, reply, &m); err != nil {
		return nil, err
	}
	r, err := m.TakePort(0)
	if err != nil {
		m.Destroy()
		return nil, err
	}
	s, ok := r.(*mach.SendRight)
	if !ok {
		r.Close()
		return nil, fmt.Errorf("hand-off carried %T, not a send right", r)
	}
	return s, nil
}
