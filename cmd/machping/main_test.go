package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Build the binary and run the self-test as a user would.
func TestSelfTest(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "machping")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stderr = os.Stderr
	require.NoError(t, build.Run())

	out, err := exec.Command(bin).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Contains(t, string(out), "codec: ok")
	require.Contains(t, string(out), "self-test passed")

	out, err = exec.Command(bin, "--version").CombinedOutput()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(string(out), "machping "))

	err = exec.Command(bin, "bogus").Run()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	require.Equal(t, 2, exit.ExitCode())
}
