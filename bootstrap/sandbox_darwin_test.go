//go:build darwin && !ios

package bootstrap_test

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/internal/testproc"
	"github.com/stretchr/testify/require"
)

// sandboxProfile allows everything except registering names outside testGroup.
var sandboxProfile = fmt.Sprintf(`(version 1)
(allow default)
(deny mach-register)
(allow mach-register (global-name-prefix "%s."))
`, testGroup)

func startSandboxedChild(t *testing.T, role, name string) *child {
	t.Helper()
	if _, err := exec.LookPath("sandbox-exec"); err != nil {
		t.Fatalf("sandbox-exec: %v", err)
	}
	return testproc.StartCommand(t, exec.Command("sandbox-exec", "-p", sandboxProfile, os.Args[0], "-test.run=^$"), role, name)
}

// launchd's own texts match the table the package carries.
func TestCodeTextsMatchLaunchd(t *testing.T) {
	require.NoError(t, darwin.Load())
	require.NotNil(t, darwin.BootstrapStrerror)
	for _, code := range []bootstrap.Code{bootstrap.ErrNotPrivileged, bootstrap.ErrNameInUse, bootstrap.ErrUnknownService,
		bootstrap.ErrServiceActive, bootstrap.ErrBadCount, bootstrap.ErrNoMemory} {
		require.Equal(t, darwin.BootstrapStrerror(int32(code)), code.Text(), "code %d", int32(code))
	}
	// 1106 has no text of its own in launchd: it falls back to mach_error_string's.
	if darwin.MachErrorString != nil {
		require.Equal(t, darwin.MachErrorString(int32(bootstrap.ErrNoChildren)), darwin.BootstrapStrerror(int32(bootstrap.ErrNoChildren)))
	}
}
