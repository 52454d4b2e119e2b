package cicheck

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

const repoRoot = "../.."

// The darwin-only job requires exactly the tests that only a Mac builds.
func TestWorkflowRunsEveryMacOSOnlyTest(t *testing.T) {
	inCode, err := MacOSOnlyTests(repoRoot)
	require.NoError(t, err)
	require.NotEmpty(t, inCode)
	inWorkflow, err := WorkflowTests(filepath.Join(repoRoot, ".github", "workflows", "ci.yml"))
	require.NoError(t, err)
	// The sandbox-exec test of bootstrap is shared with Linux (where the sandbox is emulated),
	// and the workflow names it because on macOS it is the one that reproduces 1100.
	require.Subset(t, inWorkflow, inCode, "macOS-only tests missing from the workflow's darwin-only job")
	for _, name := range inWorkflow {
		if !slices.Contains(inCode, name) {
			require.Contains(t, sharedTestsTheJobNames, name, "the workflow names a test that is not macOS-only")
		}
	}
}

// sharedTestsTheJobNames are tests that also build on Linux but that the darwin-only job runs
// for what they do only on macOS.
var sharedTestsTheJobNames = []string{"TestSandboxedChildRegisters"}

func TestMacOSOnly(t *testing.T) {
	for _, tc := range []struct {
		file, src string
		want      bool
	}{
		{"a_test.go", "//go:build darwin && !ios\n\npackage a\n", true},
		{"a_test.go", "//go:build darwin\n\npackage a\n", true},
		{"a_test.go", "//go:build linux || (darwin && !ios)\n\npackage a\n", false},
		{"a_test.go", "//go:build (!darwin && !linux) || ios\n\npackage a\n", false},
		{"a_test.go", "//go:build !linux\n\npackage a\n", true}, // of the two platforms CI has, only macOS builds it
		{"a_test.go", "//go:build ios\n\npackage a\n", false},
		{"a_test.go", "//go:build darwin && cgo\n\npackage a\n", true}, // the cgo=1 runners build it
		{"a_test.go", "//go:build darwin && arm64\n\npackage a\n", true},
		{"a_test.go", "//go:build (darwin || linux) && !cgo\n\npackage a\n", false},
		{"a_test.go", "package a\n", false},
		{"a_darwin_test.go", "package a\n", true},
		{"a_darwin_arm64_test.go", "package a\n", true},
		{"a_linux_test.go", "package a\n", false},
		{"a_darwin_test.go", "//go:build !darwin\n\npackage a\n", false},
	} {
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, tc.file), []byte(tc.src), 0o644))
		got, err := macOSOnly(dir, tc.file)
		require.NoError(t, err)
		require.Equal(t, tc.want, got, "%s: %q", tc.file, tc.src)
	}
}

func TestMacOSOnlyTestsFindsThem(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644))
	}
	write("a_darwin_test.go", "package a\nimport \"testing\"\nfunc TestMacA(t *testing.T) {}\nfunc helper(t *testing.T) {}\n")
	write("b_test.go", "//go:build darwin && !ios\n\npackage a\nimport \"testing\"\nfunc TestMacB(t *testing.T) {}\nfunc Testlower(t *testing.T) {}\n")
	write("c_test.go", "package a\nimport \"testing\"\nfunc TestEverywhere(t *testing.T) {}\n")
	write("d_linux_test.go", "package a\nimport \"testing\"\nfunc TestLinux(t *testing.T) {}\n")
	write("e_darwin_test.go", "//go:build !darwin\n\npackage a\nimport \"testing\"\nfunc TestNever(t *testing.T) {}\n")
	write("f_test.go", "//go:build linux || darwin\n\npackage a\nimport \"testing\"\nfunc TestBoth(t *testing.T) {}\n")
	write("g_darwin_test.go", "package a\nimport \"testing\"\nfunc TestNotATest(t *other.T) {}\n")
	got, err := MacOSOnlyTests(dir)
	require.NoError(t, err)
	require.Equal(t, []string{"TestMacA", "TestMacB"}, got)
}
