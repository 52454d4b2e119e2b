//go:build linux

package mach_test

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// handOff gives the peer a send right over a socketpair it inherits as fd 3.
func handOff(t testing.TB, cmd *exec.Cmd, s *mach.SendRight) func() {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	child := os.NewFile(uintptr(fds[1]), "handoff")
	cmd.ExtraFiles = []*os.File{child}
	return func() {
		child.Close()
		defer unix.Close(fds[0])
		require.Zero(t, emu.PassSendRight(fds[0], uint32(s.Name())))
	}
}

func acceptHandOff() (*mach.SendRight, error) {
	name, kr := emu.AcceptSendRight(3, 10*time.Second)
	unix.Close(3)
	if kr != 0 {
		return nil, fmt.Errorf("accepting the send right: %v", mach.KernReturn(kr))
	}
	return mach.AdoptSend(mach.Name(name)), nil
}
