//go:build darwin && !ios

package bootstrap_test

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/cicheck"
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

// launchd's texts, as bootstrap_strerror gives them, match the package's table where a source
// confirms the text on current macOS: 1100's "Permission denied" (CoreFoundation's
// CFMessagePort log "bootstrap_register(): failed 1100 (0x44c) 'Permission denied'" on macOS
// 10.12, mozilla/geckodriver#601; Chromium's BootstrapLogMessage, which prints
// bootstrap_strerror(err) (err), logs "Permission denied (1100)") and 1102's "Unknown service
// name" (Chromium: "bootstrap_look_up com.apple.ReportCrash: Unknown service name (1102)", 2025).
// The other texts come from launchd-842's bootstrap_strerror (liblaunch/libbootstrap.c), which
// libxpc replaced in OS X 10.10 with code that is not published: they are compared and reported
// in the job summary, not asserted.
func TestCodeTextsMatchLaunchd(t *testing.T) {
	require.NoError(t, darwin.Load())
	require.NotNil(t, darwin.BootstrapStrerror)
	for _, code := range []bootstrap.Code{bootstrap.ErrNotPrivileged, bootstrap.ErrUnknownService} {
		require.Equal(t, code.Text(), darwin.BootstrapStrerror(int32(code)), "code %d", int32(code))
	}
	report := []string{"### bootstrap_strerror: texts no current source confirms (reported, not asserted)", "",
		"| code | name | machport's text | libxpc's text | same |", "| --- | --- | --- | --- | --- |"}
	for _, code := range []bootstrap.Code{bootstrap.ErrNameInUse, bootstrap.ErrServiceActive, bootstrap.ErrBadCount,
		bootstrap.ErrNoMemory, bootstrap.ErrNoChildren} {
		got := darwin.BootstrapStrerror(int32(code))
		report = append(report, fmt.Sprintf("| %d | %s | %q | %q | %v |", int32(code), code.Name(), code.Text(), got, got == code.Text()))
	}
	cicheck.StepSummary(t, report...)
}
