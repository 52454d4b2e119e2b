package darwin

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// A call that needs private API in public-only mode fails with a PrivateAPIError that wraps
// errors.ErrUnsupported and names the build tag; with the private API it passes.
func TestRequirePrivate(t *testing.T) {
	saved := PublicOnly
	t.Cleanup(func() { PublicOnly = saved })
	PublicOnly = false
	require.NoError(t, RequirePrivate("bootstrap.Register"))
	PublicOnly = true
	err := RequirePrivate("bootstrap.Register")
	require.ErrorIs(t, err, errors.ErrUnsupported)
	var pe *PrivateAPIError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "bootstrap.Register", pe.Op)
	require.Contains(t, err.Error(), TagPublicOnly) // this test binary is not iOS
	require.Contains(t, err.Error(), "bootstrap.Register needs Apple private API")
}
