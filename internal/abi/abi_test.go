package abi_test

import (
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"math/big"
	"testing"

	"github.com/machport/machport/internal/abitest"
	"github.com/stretchr/testify/require"
)

// Every constant declared in abi.go must be an SDK constant of the same name and value.
func TestConstantsMatchSDK(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)

	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "abi.go", nil, 0)
	require.NoError(t, err)
	info := &types.Info{Defs: map[*ast.Ident]types.Object{}}
	conf := types.Config{Importer: importer.Default()}
	_, err = conf.Check("abi", fset, []*ast.File{file}, info)
	require.NoError(t, err)

	checked := 0
	for ident, obj := range info.Defs {
		c, ok := obj.(*types.Const)
		if !ok {
			continue
		}
		want, ok := facts.Constant(ident.Name)
		if !assertTrue(t, ok, "%s is not an SDK constant", ident.Name) {
			continue
		}
		wantInt, ok := new(big.Int).SetString(want.String(), 10)
		require.True(t, ok, "SDK value of %s is not an integer: %s", ident.Name, want)
		got := constant.Val(constant.ToInt(c.Val()))
		var gotInt *big.Int
		switch v := got.(type) {
		case int64:
			gotInt = big.NewInt(v)
		case *big.Int:
			gotInt = v
		default:
			t.Fatalf("%s: unexpected constant kind %T", ident.Name, got)
		}
		if gotInt.Cmp(wantInt) != 0 {
			t.Errorf("%s = %s in Go, %s in the SDK", ident.Name, gotInt, wantInt)
		}
		checked++
	}
	require.Greater(t, checked, 100)
	t.Logf("%d constants checked against the SDK", checked)
}

func assertTrue(t *testing.T, ok bool, format string, args ...any) bool {
	t.Helper()
	if !ok {
		t.Errorf(format, args...)
	}
	return ok
}
