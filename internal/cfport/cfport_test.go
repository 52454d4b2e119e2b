package cfport_test

import (
	"errors"
	"runtime"
	"strconv"
	"testing"

	"github.com/machport/machport/internal/abitest"
	"github.com/machport/machport/internal/cfport"
	"github.com/stretchr/testify/require"
)

// The statuses are CF's values, and their names are the SDK's.
func TestStatusesMatchSDK(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	for _, s := range []cfport.Status{cfport.Success, cfport.SendTimeout, cfport.ReceiveTimeout,
		cfport.IsInvalid, cfport.TransportError, cfport.BecameInvalid} {
		v, ok := facts.Constant(s.String())
		require.True(t, ok, "the SDK has no %s", s)
		require.Equal(t, v.String(), strconv.Itoa(int(s)), s.String())
	}
	require.Equal(t, "CFMessagePort status -9", cfport.Status(-9).String())
	require.Equal(t, "cfport: kCFMessagePortBecameInvalidError", cfport.BecameInvalid.Error())
}

// Without CoreFoundation, making a port fails with a typed error that says why.
func TestUnsupportedElsewhere(t *testing.T) {
	if runtime.GOOS == "darwin" {
		t.Skip("CoreFoundation is here; the darwin tests cover it")
	}
	_, err := cfport.CreateLocal("com.example.x", func(int32, []byte) []byte { return nil }, nil)
	require.ErrorIs(t, err, errors.ErrUnsupported)
	var op *cfport.OpError
	require.ErrorAs(t, err, &op)
	require.Equal(t, "create local", op.Op)
	_, err = cfport.CreateRemote("com.example.x", &cfport.Options{PerPID: true, PID: 1})
	require.ErrorIs(t, err, errors.ErrUnsupported)
	require.Contains(t, err.Error(), `cfport: create remote "com.example.x"`)
}
