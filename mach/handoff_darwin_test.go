//go:build darwin && !ios

package mach_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

const serviceEnv = "MACHPORT_TEST_SERVICE"

// handOff gives the peer a send right through launchd without leaving launchd a send right to
// the port itself (which would keep no-senders from ever firing): a private hand-off port is
// registered under a unique name, the peer asks it for the right, and the hand-off port is then
// destroyed, which withdraws the name.
func handOff(t testing.TB, cmd *exec.Cmd, s *mach.SendRight) func() {
	h, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	reg, err := bootstrap.RegisterUnique("com.machport.test.handoff", h, &bootstrap.Options{})
	require.NoError(t, err)
	cmd.Env = append(cmd.Env, serviceEnv+"="+reg.Name())
	return func() {
		defer reg.Close() // destroys the hand-off port, which withdraws the name
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var req mach.Message
		require.NoError(t, mach.Receive(ctx, reg.Port(), &req))
		reply, ok := req.TakeRemote().(*mach.SendOnceRight)
		require.True(t, ok, "the hand-off request carries a reply right")
		require.NoError(t, req.Destroy())
		require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOnceOf(reply),
			Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.CopySendOf(s)}}}))
	}
}

func acceptHandOff() (*mach.SendRight, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h, err := bootstrap.LookUp(ctx, os.Getenv(serviceEnv))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	reply, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return nil, err
	}
	defer reply.Close()
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
