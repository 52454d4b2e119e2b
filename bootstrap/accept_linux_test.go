//go:build linux

package bootstrap_test

import (
	"errors"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A name whose look-up socket cannot accept for a while, as in a process at its open-file limit
// (Linux's accept4 takes the new descriptor before it looks for a connection, so it fails there
// with EMFILE whether a look-up waits or not), is still served once accepts work again; an accept
// that fails for good withdraws the name. Either way closing the registration releases its
// socket: before the fix the accept loop ended at the first error, the name answered no look-up,
// and through the libSystem double (whose registrations keep no withdraw function) the listening
// socket stayed open for ever (TestScaleNames at ulimit -n 400 saw it as "leak: fds 26 -> 27").
func TestAcceptFailure(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name   string
		errno  unix.Errno
		failed int  // accepts that fail
		served bool // whether the name answers look-ups afterwards
	}{
		{name: "EMFILE", errno: unix.EMFILE, failed: 3, served: true},
		{name: "ENFILE", errno: unix.ENFILE, failed: 1, served: true},
		{name: "ENOBUFS", errno: unix.ENOBUFS, failed: 1, served: true},
		{name: "ENOMEM", errno: unix.ENOMEM, failed: 1, served: true},
		{name: "EINVAL", errno: unix.EINVAL, failed: 1, served: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxTimeout(t, 20*time.Second)
			name := uniqueName(t)
			failed, restore := bootstrap.FailAccepts(tc.failed, tc.errno)
			defer restore()
			reg, err := bootstrap.Register(name, newPort(t), nil)
			require.NoError(t, err)
			defer reg.Close()
			for range tc.failed {
				select {
				case <-failed:
				case <-ctx.Done():
					t.Fatalf("the name's accept loop stopped before %d failed accepts", tc.failed)
				}
			}
			s, err := bootstrap.LookUp(ctx, name)
			if !tc.served {
				require.ErrorIs(t, err, bootstrap.ErrUnknownService)
				return
			}
			require.NoError(t, err)
			require.NoError(t, s.Close())
			require.NoError(t, reg.Close())
			_, err = bootstrap.LookUp(ctx, name)
			require.True(t, errors.Is(err, bootstrap.ErrUnknownService), "after Close: %v", err)
		})
	}
}
