package bootstrap

import (
	"context"
	"errors"
	"testing"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// In a public-only build (namespace_darwin.go installs publicOnly by a constant) every bootstrap
// operation fails before calling anything, with an *Error that wraps a PrivateAPIError, which
// wraps errors.ErrUnsupported and names the Go call and the build tag.
func TestPublicOnlyNamespace(t *testing.T) {
	saved := ns
	ns = publicOnly{}
	t.Cleanup(func() { ns = saved })
	port, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer port.Close()
	ctx := context.Background()
	for _, c := range []struct {
		goOp string
		call func() error
	}{
		{"bootstrap.Register", func() error { _, err := Register("com.example.po", port, nil); return err }},
		{"bootstrap.CheckIn", func() error { _, err := CheckIn("com.example.po"); return err }},
		{"bootstrap.LookUp", func() error { _, err := LookUp(ctx, "com.example.po"); return err }},
		{"bootstrap.LookUpPID", func() error { _, err := LookUpPID(ctx, "com.example.po", 1); return err }},
	} {
		t.Run(c.goOp, func(t *testing.T) {
			err := c.call()
			require.ErrorIs(t, err, errors.ErrUnsupported)
			var pe *PrivateAPIError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, c.goOp, pe.Op)
			var be *Error
			require.ErrorAs(t, err, &be)
			require.Equal(t, "com.example.po", be.Name)
			require.Zero(t, be.Code, "launchd was not asked")
			require.Contains(t, err.Error(), "machport_publiconly")
		})
	}
}
