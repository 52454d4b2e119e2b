package darwin

import (
	"reflect"
	"strconv"
	"testing"
	"unsafe"

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

// Every variadic binding matches its prototype's fixed parameters on both targets, and the
// arm64 variant pads the integer registers so that its variadic arguments land on the stack, as
// Apple's arm64 ABI passes them.
func TestVariadicFuncsMatchSDK(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	for _, f := range VariadicFuncs {
		t.Run(f.Name, func(t *testing.T) {
			sym := facts.Symbol(f.Name)
			require.NotNil(t, sym, "the SDK exports no %s", f.Name)
			require.Equal(t, sym.Library, f.Lib)
			proto := facts.Prototype(f.Name)
			require.NotNil(t, proto)
			require.True(t, proto.Variadic, "%s is not variadic: bind it in Funcs", f.Name)
			require.NoError(t, checkVariadic(reflect.TypeOf(f.Arm64).Elem(), proto, f.VarArgs, true))
			require.NoError(t, checkVariadic(reflect.TypeOf(f.Amd64).Elem(), proto, f.VarArgs, false))
		})
	}
}

func checkVariadic(fn reflect.Type, proto *abitest.Prototype, varArgs []string, arm64 bool) error {
	for _, target := range abitest.Targets {
		fixed := proto.ParamsFor(target)
		pad := 0
		if arm64 {
			pad = Arm64IntRegisters - len(fixed)
		}
		if want := len(fixed) + pad + len(varArgs); fn.NumIn() != want {
			return errorf("%s: Go takes %d parameters, want %d fixed + %d padding + %d variadic",
				target, fn.NumIn(), len(fixed), pad, len(varArgs))
		}
		for i, c := range fixed {
			if err := abitest.CheckGoType(fn.In(i), c); err != nil {
				return errorf("%s: fixed parameter %d: %v", target, i, err)
			}
		}
		for i := len(fixed); i < len(fixed)+pad; i++ {
			if fn.In(i).Kind() != reflect.Uintptr {
				return errorf("%s: padding parameter %d is %s, want uintptr", target, i, fn.In(i))
			}
		}
		for i, c := range varArgs {
			// A variadic argument takes a whole 8-byte slot: it must be pointer-sized.
			in := fn.In(len(fixed) + pad + i)
			if err := abitest.CheckGoType(in, c); err != nil || in.Size() != 8 {
				return errorf("%s: variadic argument %d (%s): %v", target, i, in, err)
			}
		}
		if err := abitest.CheckGoType(fn.Out(0), proto.Return); err != nil {
			return errorf("%s: result: %v", target, err)
		}
	}
	return nil
}

// A variadic binding without the arm64 padding must be caught.
func TestCheckVariadicCatchesMissingPadding(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	var unpadded func(pid int32, op unsafe.Pointer, filter uint32, arg unsafe.Pointer) int32
	require.Error(t, checkVariadic(reflect.TypeOf(unpadded), facts.Prototype("sandbox_check"), []string{"const char *"}, true))
	require.NoError(t, checkVariadic(reflect.TypeOf(unpadded), facts.Prototype("sandbox_check"), []string{"const char *"}, false))
}

func TestCFStringEncodingUTF8MatchesSDK(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	v, ok := facts.Constant("kCFStringEncodingUTF8")
	require.True(t, ok)
	require.Equal(t, v.String(), strconv.Itoa(CFStringEncodingUTF8))
}
