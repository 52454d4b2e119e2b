package darwin

import (
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	modulePath = "github.com/machport/machport"
	moduleRoot = "../.."
)

// loaderImages is what each loader opens.
var loaderImages = map[string][]image{
	"Load":               {imageLibSystem},
	"LoadCoreFoundation": {imageLibSystem, imageCoreFoundation},
	"LoadSecurity":       {imageLibSystem, imageCoreFoundation, imageSecurity},
}

// Every package of the module that macOS builds calls, for each binding it uses, a loader that
// opens the binding's image (a binding of an image no loader opened is a nil function); mach and
// bootstrap call Load alone, and sandboxcheck's name rule calls none: so a program that uses only
// them opens libSystem alone (what Load opens: TestLoadOpensLibSystemAlone). Frameworks are opened
// by internal/cfport (CoreFoundation), and sandboxcheck's entitlement path and peer's
// code-signing check (Security) only.
func TestLoadersTheCallersUse(t *testing.T) {
	images := bindingImages(t)
	ctxt := build.Default
	ctxt.GOOS, ctxt.GOARCH, ctxt.CgoEnabled = "darwin", "arm64", false
	ctxt.BuildTags, ctxt.ToolTags = nil, nil
	fset := token.NewFileSet()

	callers := map[string]*pkgUse{} // by import path, for the packages that use internal/darwin
	err := filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(moduleRoot, path)
		if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if rel == "internal/darwin" || strings.HasPrefix(rel, "internal/darwin/") {
			return nil // the bindings themselves and their double
		}
		pkg, err := ctxt.ImportDir(path, 0)
		if err != nil {
			return nil // no Go files for macOS here
		}
		importPath := modulePath + "/" + filepath.ToSlash(rel)
		for _, name := range pkg.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(path, name), nil, parser.SkipObjectResolution)
			require.NoError(t, err)
			use := darwinUses(f)
			if use == nil {
				continue
			}
			if callers[importPath] == nil {
				callers[importPath] = &pkgUse{files: map[string]bool{}}
			}
			callers[importPath].add(use, name)
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, callers)

	for path, use := range callers {
		opened := map[image]bool{}
		for loader := range use.loaders {
			for _, img := range loaderImages[loader] {
				opened[img] = true
			}
		}
		for name := range use.names {
			if img, ok := images[name]; ok {
				require.True(t, opened[img], "%s uses darwin.%s, of %s, and calls no loader that opens it (it calls %v)",
					path, name, imagePaths[MacOS][img], slices.Sorted(maps.Keys(use.loaders)))
			}
		}
	}
	for _, path := range []string{modulePath + "/mach", modulePath + "/bootstrap"} {
		require.Contains(t, callers, path)
		require.Equal(t, []string{"Load"}, slices.Sorted(maps.Keys(callers[path].loaders)), "the loaders %s calls", path)
	}
	require.NotContains(t, callers[modulePath+"/sandboxcheck"].files, "name.go", "sandboxcheck's name rule uses internal/darwin")
	for path, use := range callers {
		for loader := range use.loaders {
			switch loader {
			case "LoadCoreFoundation":
				require.Equal(t, modulePath+"/internal/cfport", path, "who opens CoreFoundation")
			case "LoadSecurity":
				require.Contains(t, []string{modulePath + "/sandboxcheck", modulePath + "/peer"}, path, "who opens Security")
			}
		}
	}
}

type pkgUse struct {
	loaders map[string]bool // the loaders called
	names   map[string]bool // every darwin.X referred to
	files   map[string]bool // the files that refer to internal/darwin
}

func (p *pkgUse) add(u *pkgUse, file string) {
	if p.loaders == nil {
		p.loaders, p.names = map[string]bool{}, map[string]bool{}
	}
	for k := range u.loaders {
		p.loaders[k] = true
	}
	for k := range u.names {
		p.names[k] = true
	}
	p.files[file] = true
}

// darwinUses returns what the file refers to in internal/darwin, or nil if it does not import it.
func darwinUses(f *ast.File) *pkgUse {
	local := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == modulePath+"/internal/darwin" {
			local = "darwin"
			if imp.Name != nil {
				local = imp.Name.Name
			}
		}
	}
	if local == "" {
		return nil
	}
	u := &pkgUse{loaders: map[string]bool{}, names: map[string]bool{}}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == local && loaderImages[sel.Sel.Name] != nil {
					u.loaders[sel.Sel.Name] = true
				}
			}
		case *ast.SelectorExpr:
			if x, ok := n.X.(*ast.Ident); ok && x.Name == local {
				u.names[n.Sel.Name] = true
				if loaderImages[n.Sel.Name] != nil {
					// A loader handed to the portable logic as a value (load: darwin.Load),
					// which calls it before any binding.
					u.loaders[n.Sel.Name] = true
				}
			}
		}
		return true
	})
	return u
}

// bindingImages maps the Go name of each bound variable of bindings.go and bindings_private.go
// to its symbol's image, as the tables declare them ({..., Lib: LibX, Fn: &Name}), and each
// helper that calls a binding (SandboxCheck) to its binding's image.
func bindingImages(t *testing.T) map[string]image {
	t.Helper()
	out := map[string]image{}
	for _, file := range []string{"bindings.go", "bindings_private.go"} {
		addBindingImages(t, file, out)
	}
	require.Len(t, out, len(Funcs)+2*len(VariadicFuncs)+len(DataSymbols), "bound variables found in bindings.go and bindings_private.go")
	// Helpers that read a binding or a data symbol of libSystem.
	for _, h := range []string{"SandboxCheck", "SandboxCheckNoReport", "TaskSelf", "BootstrapPort"} {
		out[h] = imageLibSystem
	}
	return out
}

func addBindingImages(t *testing.T, file string, out map[string]image) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
	require.NoError(t, err)
	libs := map[string]string{"LibSystem": LibSystem, "LibKernel": LibKernel, "LibXPC": LibXPC,
		"LibSandbox": LibSandbox, "LibSecurity": LibSecurity, "LibCoreFoundation": LibCoreFoundation, "LibDispatch": LibDispatch, "LibNotify": LibNotify}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.CompositeLit)
		if !ok {
			return true
		}
		var lib string
		var vars []string
		for _, el := range lit.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				continue
			}
			key, _ := kv.Key.(*ast.Ident)
			switch {
			case key == nil:
			case key.Name == "Lib":
				if id, ok := kv.Value.(*ast.Ident); ok {
					lib = libs[id.Name]
					require.NotEmpty(t, lib, "unknown library constant %s", id.Name)
				}
			case key.Name == "Fn" || key.Name == "Arm64" || key.Name == "Amd64" || key.Name == "Addr":
				if u, ok := kv.Value.(*ast.UnaryExpr); ok && u.Op == token.AND {
					if id, ok := u.X.(*ast.Ident); ok {
						vars = append(vars, id.Name)
					}
				}
			}
		}
		for _, v := range vars {
			out[v] = imageOf(lib)
		}
		return true
	})
}
