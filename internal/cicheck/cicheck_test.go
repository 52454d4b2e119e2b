package cicheck

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// The darwin-only job accepts one skip, TestLaunchdCheckIn's without a GUI login session, and
// only when the test's skip message starts with the words the job looks for: held together
// here, since neither side runs on Linux.
func TestWorkflowAcceptsOnlyTheLaunchdSkip(t *testing.T) {
	workflow := filepath.Join(repoRoot, ".github", "workflows", "ci.yml")
	name, err := WorkflowVar(workflow, "launchd_test")
	require.NoError(t, err)
	require.Equal(t, "TestLaunchdCheckIn", name)
	inWorkflow, err := WorkflowTests(workflow)
	require.NoError(t, err)
	require.Contains(t, inWorkflow, name)
	reason, err := WorkflowVar(workflow, "launchd_skip")
	require.NoError(t, err)
	require.NotEmpty(t, reason)
	src, err := os.ReadFile(filepath.Join(repoRoot, "bootstrap", "launchd_darwin_test.go"))
	require.NoError(t, err)
	require.True(t, strings.Contains(string(src), "t.Skipf(\""+reason+" %q"),
		"TestLaunchdCheckIn's skip message must start with the workflow's launchd_skip (%q) and the manager's name", reason)
}

func TestWorkflowVar(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ci.yml")
	require.NoError(t, os.WriteFile(path, []byte("run: |\n  a='one two'\n  b=\"no\"\n   c='x'  \n"), 0o644))
	v, err := WorkflowVar(path, "a")
	require.NoError(t, err)
	require.Equal(t, "one two", v)
	v, err = WorkflowVar(path, "c")
	require.NoError(t, err)
	require.Equal(t, "x", v)
	_, err = WorkflowVar(path, "b")
	require.Error(t, err)
	_, err = WorkflowVar(path, "d")
	require.Error(t, err)
}

// StepSummary appends to the step's summary file when Actions names one, and only logs
// otherwise.
func TestStepSummary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "summary.md")
	require.NoError(t, os.WriteFile(path, []byte("before\n"), 0o644))
	t.Setenv("GITHUB_STEP_SUMMARY", path)
	StepSummary(t, "| a | b |", "| - | - |")
	StepSummary(t, "after")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "before\n| a | b |\n| - | - |\nafter\n", string(b))

	t.Setenv("GITHUB_STEP_SUMMARY", "")
	StepSummary(t, "not written")
	b, err = os.ReadFile(path)
	require.NoError(t, err)
	require.False(t, strings.Contains(string(b), "not written"))
}
