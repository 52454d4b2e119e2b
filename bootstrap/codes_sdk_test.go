package bootstrap

import (
	"testing"

	"github.com/machport/machport/internal/abi"
)

// The codes are written as their values, so that go doc shows them; each must equal the SDK's.
func TestCodesAreTheSDKs(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"ErrNotPrivileged", int64(ErrNotPrivileged), abi.BOOTSTRAP_NOT_PRIVILEGED},
		{"ErrNameInUse", int64(ErrNameInUse), abi.BOOTSTRAP_NAME_IN_USE},
		{"ErrUnknownService", int64(ErrUnknownService), abi.BOOTSTRAP_UNKNOWN_SERVICE},
		{"ErrServiceActive", int64(ErrServiceActive), abi.BOOTSTRAP_SERVICE_ACTIVE},
		{"ErrBadCount", int64(ErrBadCount), abi.BOOTSTRAP_BAD_COUNT},
		{"ErrNoMemory", int64(ErrNoMemory), abi.BOOTSTRAP_NO_MEMORY},
		{"ErrNoChildren", int64(ErrNoChildren), abi.BOOTSTRAP_NO_CHILDREN},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, the SDK says %d", c.name, c.got, c.want)
		}
	}
}
