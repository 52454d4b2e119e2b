package cicheck

import (
	"go/ast"
	"strings"
	"unicode"
	"unicode/utf8"
)

// testFunc reports whether decl is a top-level func TestXxx(t *testing.T), and its name. The
// parameter must be *testing.T as the file spells it with the usual import name.
func testFunc(decl ast.Decl) (string, bool) {
	fn, ok := decl.(*ast.FuncDecl)
	if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") || fn.Name.Name == "TestMain" {
		return "", false
	}
	if rest := fn.Name.Name[len("Test"):]; rest != "" {
		if r, _ := utf8.DecodeRuneInString(rest); unicode.IsLower(r) {
			return "", false
		}
	}
	params := fn.Type.Params.List
	if len(params) != 1 {
		return "", false
	}
	star, ok := params[0].Type.(*ast.StarExpr)
	if !ok {
		return "", false
	}
	sel, ok := star.X.(*ast.SelectorExpr)
	if !ok || sel.Sel.Name != "T" {
		return "", false
	}
	if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "testing" {
		return "", false
	}
	return fn.Name.Name, true
}
