// Package cicheck ties the GitHub Actions workflow to the code it runs: the macOS-only tests that
// the workflow's darwin-only job requires by name must be exactly the tests that exist only on
// macOS, so a renamed, added or deleted Darwin test cannot drop out of the one CI that runs it.
package cicheck

import (
	"fmt"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The platforms a file is matched against: the macOS runners', and the Linux ones the project's
// own CI has, each with and without cgo.
var (
	macOSContexts = contexts("darwin", "arm64", "amd64")
	linuxContexts = contexts("linux", "amd64", "arm64")
)

func contexts(goos string, arches ...string) []build.Context {
	var out []build.Context
	for _, arch := range arches {
		for _, cgo := range []bool{false, true} {
			c := build.Default
			c.GOOS, c.GOARCH, c.CgoEnabled = goos, arch, cgo
			c.BuildTags, c.ToolTags = nil, nil
			out = append(out, c)
		}
	}
	return out
}

// macOSOnly reports whether the Go file dir/name builds on some macOS runner and on no Linux
// machine, by the go command's own rules (the _GOOS_GOARCH name suffixes and //go:build lines):
// its tests run only on the macOS jobs.
func macOSOnly(dir, name string) (bool, error) {
	matches := func(ctxts []build.Context) (bool, error) {
		for _, c := range ctxts {
			ok, err := c.MatchFile(dir, name)
			if ok || err != nil {
				return ok, err
			}
		}
		return false, nil
	}
	onMac, err := matches(macOSContexts)
	if err != nil || !onMac {
		return false, err
	}
	onLinux, err := matches(linuxContexts)
	return !onLinux, err
}

// MacOSOnlyTests returns, sorted, the Test functions under root (a module's directory) in files
// that build on macOS and not on Linux.
func MacOSOnlyTests(root string) ([]string, error) {
	var tests []string
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		only, err := macOSOnly(filepath.Dir(path), d.Name())
		if err != nil || !only {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			if name, ok := testFunc(decl); ok {
				tests = append(tests, name)
			}
		}
		return nil
	})
	slices.Sort(tests)
	return tests, err
}

// testListRE finds the bash array the darwin-only job declares its tests in: tests=( ... ).
var testListRE = regexp.MustCompile(`(?s)\btests=\(\s*(.*?)\s*\)`)

// WorkflowTests returns, sorted, the test names in the workflow file's tests=( ... ) array.
func WorkflowTests(workflow string) ([]string, error) {
	b, err := os.ReadFile(workflow)
	if err != nil {
		return nil, err
	}
	m := testListRE.FindSubmatch(b)
	if m == nil {
		return nil, fmt.Errorf("%s: no tests=( ... ) list", workflow)
	}
	tests := strings.Fields(string(m[1]))
	slices.Sort(tests)
	return tests, nil
}

// StepSummary logs lines on t and, when the test runs in a GitHub Actions step, appends them to
// that step's job summary ($GITHUB_STEP_SUMMARY, Markdown): where a macOS job reports what it
// observed without asserting it (a system text no source confirms, a test skipped for a stated
// reason).
func StepSummary(t testing.TB, lines ...string) {
	t.Helper()
	text := strings.Join(lines, "\n") + "\n"
	t.Log(text)
	path := os.Getenv("GITHUB_STEP_SUMMARY")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		_, err = f.WriteString(text)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Errorf("cicheck: writing the job summary: %v", err)
	}
}

// WorkflowVar returns the value of the bash assignment name='value' in the workflow file: the
// workflow states there what it accepts of a test, and a test of this package holds the code to
// the same words.
func WorkflowVar(workflow, name string) (string, error) {
	b, err := os.ReadFile(workflow)
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(name) + `='([^']*)'\s*$`).FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%s: no %s='...' assignment", workflow, name)
	}
	return string(m[1]), nil
}
