package darwin

import (
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"go/types"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// GOOS=ios cannot be compiled here: purego refuses to build for iOS without cgo
// (_PUREGO_REQUIRES_CGO_ON_IOS), and cgo for iOS needs Xcode's clang. What can be checked is that
// the files GOOS=ios selects (build constraints, cgo on) type-check: this test loads the library
// packages and every dependency from source as go/build selects them for ios/arm64 with cgo,
// and type-checks them with go/types, whose FakeImportC stands in for cgo's C package (used only
// by purego's and the runtime's cgo files). It does it for the default (public-only) mode and
// with -tags machport_private. The workflow's ios job compiles and links with Xcode; neither
// runs anything on a device.
func TestIOSFileSetTypeChecks(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the standard library from source")
	}
	libs := []string{"mach", "bootstrap", "sandboxcheck", "cfmessageport", "cfmessageport/wire", "peer", "notify",
		"internal/darwin", "internal/cfport", "internal/threadnames"}
	for _, tags := range [][]string{nil, {TagPrivate}} {
		t.Run(fmt.Sprintf("tags=%v", tags), func(t *testing.T) {
			ctxt := build.Default
			ctxt.GOOS, ctxt.GOARCH, ctxt.CgoEnabled = "ios", "arm64", true
			ctxt.BuildTags, ctxt.ToolTags = tags, build.Default.ToolTags
			imp := &sourceImporter{ctxt: &ctxt, fset: token.NewFileSet(), pkgs: map[string]*types.Package{}}
			for _, lib := range libs {
				_, err := imp.ImportFrom(modulePath+"/"+lib, moduleRoot, 0)
				require.NoError(t, err, lib)
			}
			files := imp.files[modulePath+"/internal/darwin"]
			require.Contains(t, files, "load_darwin.go", "the purego loader is in the iOS file set")
			if len(tags) == 0 {
				require.Contains(t, files, "bindings_publiconly.go")
				require.NotContains(t, files, "bindings_private.go")
			} else {
				require.Contains(t, files, "bindings_private.go")
			}
		})
	}
}

// sourceImporter type-checks packages from source as ctxt selects their files.
type sourceImporter struct {
	ctxt  *build.Context
	fset  *token.FileSet
	pkgs  map[string]*types.Package
	files map[string][]string // the files chosen, by import path
}

func (s *sourceImporter) Import(path string) (*types.Package, error) {
	return s.ImportFrom(path, "", 0)
}

func (s *sourceImporter) ImportFrom(path, dir string, _ types.ImportMode) (*types.Package, error) {
	if path == "unsafe" {
		return types.Unsafe, nil
	}
	if path == "C" {
		return nil, fmt.Errorf("import \"C\" reached the importer")
	}
	if p, ok := s.pkgs[path]; ok {
		if p == nil {
			return nil, fmt.Errorf("import cycle through %s", path)
		}
		return p, nil
	}
	s.pkgs[path] = nil
	bp, err := s.ctxt.Import(path, dir, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ours := strings.HasPrefix(path, modulePath)
	var files []*ast.File
	names := append(append([]string{}, bp.GoFiles...), bp.CgoFiles...)
	for _, name := range names {
		f, err := parser.ParseFile(s.fset, filepath.Join(bp.Dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	if s.files == nil {
		s.files = map[string][]string{}
	}
	s.files[path] = names
	var errs []string
	conf := types.Config{
		Importer:    s,
		FakeImportC: true,
		Sizes:       types.SizesFor("gc", "arm64"),
		// Only the module's own bodies are checked; the rest is the toolchain's and its
		// dependencies', which the darwin builds compile.
		IgnoreFuncBodies: !ours,
		Error: func(err error) {
			if len(errs) < 10 {
				errs = append(errs, err.Error())
			}
		},
	}
	p, _ := conf.Check(path, s.fset, files, nil)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s for ios/arm64: %s", path, strings.Join(errs, "; "))
	}
	s.pkgs[path] = p
	return p, nil
}
