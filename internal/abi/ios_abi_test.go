package abi_test

import (
	"go/ast"
	"go/constant"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"slices"
	"testing"

	"github.com/machport/machport/internal/abitest"
	"github.com/stretchr/testify/require"
)

// Every constant of abi.go has its value on iOS too: the iOS SDK facts give the same value, or
// list the constant among those the iOS SDK does not declare (bootstrap.h's BOOTSTRAP_* codes,
// libproc's PROC_*), whose values machport takes from the macOS facts (TestConstantsMatchSDK).
func TestConstantsMatchIOSSDK(t *testing.T) {
	ios, err := abitest.LoadIOS()
	require.NoError(t, err)
	mac, err := abitest.Load()
	require.NoError(t, err)

	fset := token.NewFileSet()
	file, err := parser.ParseFile(fset, "abi.go", nil, 0)
	require.NoError(t, err)
	info := &types.Info{Defs: map[*ast.Ident]types.Object{}}
	_, err = (&types.Config{Importer: importer.Default()}).Check("abi", fset, []*ast.File{file}, info)
	require.NoError(t, err)

	onIOS, fromMac := 0, 0
	for ident, obj := range info.Defs {
		c, ok := obj.(*types.Const)
		if !ok {
			continue
		}
		got := constant.ToInt(c.Val()).ExactString()
		if v, ok := ios.Constant(ident.Name); ok && v.String() != "" {
			require.Equal(t, v.String(), got, "%s on iOS", ident.Name)
			onIOS++
			continue
		}
		require.True(t, slices.Contains(ios.ConstantsMissingOnIOS, ident.Name), "%s is neither in the iOS facts nor listed as missing there", ident.Name)
		v, ok := mac.Constant(ident.Name)
		require.True(t, ok, ident.Name)
		require.Equal(t, v.String(), got, "%s (the macOS value, used on iOS)", ident.Name)
		fromMac++
	}
	require.Greater(t, onIOS, 100)
	t.Logf("%d constants checked against the iOS SDK, %d taken from the macOS facts (not declared on iOS)", onIOS, fromMac)
}
