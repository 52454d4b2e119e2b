package notify_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/machport/machport/internal/abitest"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/notify"
)

// A delivery is the message notifyd sends, as the SDK facts describe it received
// (private_notify.mach_port_message.as_received): 24 bytes, msgh_bits MACH_MSGH_BITS(0,
// MACH_MSG_TYPE_PORT_SEND), no remote port, the local port the registration's, msgh_id its
// token, no body and no descriptors.
func TestDeliveryIsNotifydsMessage(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	facts, err := abitest.Load()
	require.NoError(t, err)
	bits, err := facts.Derived("MACH_MSGH_BITS(0, MACH_MSG_TYPE_PORT_SEND)", "arm64")
	require.NoError(t, err)
	require.Equal(t, int64(4352), bits)

	name := uniqueName(t)
	reg, err := notify.RegisterPort(name, nil)
	require.NoError(t, err)
	defer reg.Cancel()
	require.NoError(t, notify.Post(name))
	var m mach.Message
	require.NoError(t, mach.Receive(ctxFor(t), reg.Port().Right(), &m))
	defer m.Destroy()
	require.Equal(t, uint32(24), m.Size)
	require.False(t, m.Complex)
	require.Empty(t, m.Descriptors)
	require.Empty(t, m.Body)
	require.Equal(t, mach.Disposition(bits&0x1f), m.Remote.Disposition, "remote bits")
	require.True(t, m.Remote.IsNull())
	require.Equal(t, mach.Disposition(bits>>8&0x1f), m.Local.Disposition, "local bits")
	require.Equal(t, reg.Port().Right().Name(), m.Local.Name)
	require.Equal(t, reg.Token(), m.ID)
	tok, ok := notify.ParseMessage(&m)
	require.True(t, ok)
	require.Equal(t, reg.Token(), tok)
}
