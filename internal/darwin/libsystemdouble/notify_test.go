//go:build linux

package libsystemdouble

import (
	"testing"

	"github.com/machport/machport/internal/darwin"
	"github.com/stretchr/testify/require"
)

// fakeNotifyd records what reaches notifyd.
type fakeNotifyd struct {
	NotifyCenter
	posted []string
}

func (f *fakeNotifyd) Post(name string) uint32 { f.posted = append(f.posted, name); return 0 }

// Without a notifyd the calls fail as libnotify's do when it cannot reach the server; libnotify's
// own checks of NULL out-parameters come before any server is asked; with one, the calls reach it.
func TestNotifyCalls(t *testing.T) {
	Install()
	t.Cleanup(Reset)
	SetNotifyCenter(nil)
	var tok int32
	var port uint32
	require.Equal(t, uint32(notifyStatusServerNotFound), darwin.NotifyPost("a"))
	require.Equal(t, uint32(notifyStatusServerNotFound), darwin.NotifyRegisterCheck("a", &tok))
	require.Equal(t, uint32(notifyStatusServerNotFound), darwin.NotifyRegisterMachPort("a", &port, 0, &tok))
	require.Equal(t, uint32(notifyStatusInvalidToken), darwin.NotifyCancel(1))
	require.False(t, darwin.NotifyIsValidToken(1))
	require.Equal(t, uint32(notifyStatusInvalidPort), darwin.NotifyRegisterMachPort("a", nil, 0, &tok))
	require.Equal(t, uint32(notifyStatusNullInput), darwin.NotifyRegisterMachPort("a", &port, 0, nil))
	require.Equal(t, uint32(notifyStatusNullInput), darwin.NotifyRegisterCheck("a", nil))
	require.Equal(t, uint32(notifyStatusNullInput), darwin.NotifyCheck(1, nil))
	require.Equal(t, uint32(notifyStatusNullInput), darwin.NotifyGetState(1, nil))

	f := &fakeNotifyd{}
	SetNotifyCenter(f)
	t.Cleanup(func() { SetNotifyCenter(nil) })
	require.Zero(t, darwin.NotifyPost("com.example.x"))
	require.Equal(t, []string{"com.example.x"}, f.posted)
}
