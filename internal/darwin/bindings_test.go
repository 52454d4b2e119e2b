package darwin

import (
	"reflect"
	"testing"

	"github.com/machport/machport/internal/abitest"
	"github.com/stretchr/testify/require"
)

// Every bound function exists in the dylib the SDK names, is not variadic, and its Go parameters
// and results match the prototype's canonical C types on both targets.
func TestFuncsMatchSDK(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, f := range Funcs {
		require.False(t, seen[f.Name], "%s bound twice", f.Name)
		seen[f.Name] = true
		t.Run(f.Name, func(t *testing.T) {
			sym := facts.Symbol(f.Name)
			require.NotNil(t, sym, "the SDK exports no %s", f.Name)
			require.Equal(t, sym.Library, f.Lib, "dylib of %s", f.Name)
			require.Subset(t, sym.Archs, []string{"arm64", "x86_64"})
			proto := facts.Prototype(f.Name)
			require.NotNil(t, proto, "no prototype for %s", f.Name)
			require.Equal(t, "function", proto.Kind)
			require.False(t, proto.Variadic, "%s is variadic: purego cannot call it directly", f.Name)
			require.NoError(t, checkFunc(reflect.TypeOf(f.Fn), proto))
		})
	}
	t.Logf("%d functions checked against the SDK", len(Funcs))
}

func checkFunc(fnPtr reflect.Type, proto *abitest.Prototype) error {
	fn := fnPtr.Elem()
	for _, target := range abitest.Targets {
		params := proto.ParamsFor(target)
		if fn.NumIn() != len(params) {
			return errorf("%s: Go takes %d parameters, C %d", target, fn.NumIn(), len(params))
		}
		for i, c := range params {
			if err := abitest.CheckGoType(fn.In(i), c); err != nil {
				return errorf("%s: parameter %d: %v", target, i, err)
			}
		}
		switch {
		case proto.Return == "void":
			if fn.NumOut() != 0 {
				return errorf("C returns void, Go returns %d values", fn.NumOut())
			}
		case fn.NumOut() != 1:
			return errorf("C returns %s, Go returns %d values", proto.Return, fn.NumOut())
		default:
			if err := abitest.CheckGoType(fn.Out(0), proto.Return); err != nil {
				return errorf("%s: result: %v", target, err)
			}
		}
	}
	return nil
}

// Every data symbol exists in the dylib the SDK names and is read with the Go type of its C type.
func TestDataSymbolsMatchSDK(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	for _, d := range DataSymbols {
		sym := facts.Symbol(d.Name)
		require.NotNil(t, sym, "the SDK exports no %s", d.Name)
		require.Equal(t, sym.Library, d.Lib, "dylib of %s", d.Name)
		proto := facts.Prototype(d.Name)
		require.NotNil(t, proto, "no declaration for %s", d.Name)
		require.Equal(t, "variable", proto.Kind)
		require.NoError(t, abitest.CheckGoType(reflect.TypeOf(d.Type), proto.VariableType), d.Name)
	}
}

// A binding whose Go type disagrees with the SDK must be caught.
func TestCheckFuncCatchesMismatch(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	var wrongSign func(task, name, right uint32, delta uint32) int32 // delta is int in C
	require.Error(t, checkFunc(reflect.TypeOf(&wrongSign), facts.Prototype("mach_port_mod_refs")))
	var wrongWidth func(task uint32, options uintptr, context uint32, name *uint32) int32
	require.Error(t, checkFunc(reflect.TypeOf(&wrongWidth), facts.Prototype("mach_port_construct")))
	var wrongCount func(task uint32) int32
	require.Error(t, checkFunc(reflect.TypeOf(&wrongCount), facts.Prototype("mach_port_deallocate")))
}
