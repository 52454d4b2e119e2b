//go:build linux

package main

import (
	"context"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/emu"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// machping serve, raw or CF, drops what a peer writes that is no message and keeps serving: the
// datagrams go straight to the channel a look-up hands out.
func TestServeSurvivesHostileDatagrams(t *testing.T) {
	for _, raw := range []bool{false, true} {
		name := "cf"
		if raw {
			name = "raw"
		}
		t.Run(name, func(t *testing.T) {
			service := uniqueName(t)
			args := []string{service}
			if raw {
				args = []string{"--raw", service}
			}
			srv := startServer(t, nil, args...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			send, err := bootstrap.LookUp(ctx, service)
			require.NoError(t, err)
			defer send.Close()
			fd, ok := emu.ChannelFD(uint32(send.Name()))
			require.True(t, ok)
			var p [2]int
			require.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
			defer unix.Close(p[0])
			defer unix.Close(p[1])
			for _, dg := range []struct {
				data []byte
				fds  []int
			}{
				{nil, nil},
				{[]byte("not a message"), nil},
				{make([]byte, 64), []int{p[0], p[1]}}, // zero magic, with fds nothing refers to
			} {
				var oob []byte
				if dg.fds != nil {
					oob = unix.UnixRights(dg.fds...)
				}
				require.NoError(t, unix.Sendmsg(fd, dg.data, oob, nil, 0))
			}
			ping := []string{"ping", "-c", "1", service}
			if raw {
				ping = []string{"ping", "--raw", "-c", "1", service}
			}
			requireCode(t, runMachping(t, nil, ping...), exitOK)
			_, code := srv.interrupt(t)
			require.Equal(t, exitOK, code)
		})
	}
}
