// Package cicheck ties the GitHub Actions workflow to the code it runs: the macOS-only tests that
// the workflow's darwin-only job requires by name must be exactly the tests that exist only on
// macOS, so a renamed, added or deleted Darwin test cannot drop out of the one CI that runs it.
package cicheck

import (
	"fmt"
	"go/build/constraint"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// macOSOnly reports whether a file with build constraint expr compiles for macOS (darwin without
// ios) and not for linux, where the project's own CI runs: its tests run only on the macOS jobs.
func macOSOnly(expr constraint.Expr) bool {
	has := func(tags ...string) func(string) bool {
		return func(tag string) bool { return slices.Contains(tags, tag) }
	}
	return expr.Eval(has("darwin", "unix")) && !expr.Eval(has("linux", "unix"))
}

// MacOSOnlyTests returns, sorted, the Test functions under root (a module's directory) that are
// built for macOS and not for Linux, by their files' //go:build lines and _GOOS_test.go names.
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
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		var expr constraint.Expr
		for _, cg := range f.Comments {
			if cg.Pos() > f.Package {
				break
			}
			for _, c := range cg.List {
				if constraint.IsGoBuild(c.Text) {
					if expr, err = constraint.Parse(c.Text); err != nil {
						return fmt.Errorf("%s: %w", path, err)
					}
				}
			}
		}
		// A _GOOS_test.go name is a constraint too (and _darwin matches ios as well).
		for _, goos := range []string{"darwin", "ios", "linux"} {
			if strings.HasSuffix(path, "_"+goos+"_test.go") {
				tag := &constraint.TagExpr{Tag: goos}
				if expr == nil {
					expr = tag
				} else {
					expr = &constraint.AndExpr{X: expr, Y: tag}
				}
			}
		}
		if expr == nil || !macOSOnly(expr) {
			return nil
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
