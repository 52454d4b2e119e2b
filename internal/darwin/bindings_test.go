package darwin

import (
	"reflect"
	"strconv"
	"strings"
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
		if f.Unchecked != "" {
			continue // TestUncheckedBindingsAreNotInFacts
		}
		t.Run(f.Name, func(t *testing.T) {
			sym := facts.Symbol(f.Name)
			require.NotNil(t, sym, "the SDK exports no %s", f.Name)
			require.Equal(t, sym.Library, f.Lib, "dylib of %s", f.Name)
			require.Subset(t, sym.Archs, []string{"arm64", "x86_64"})
			proto := facts.Prototype(f.Name)
			require.NotNil(t, proto, "no prototype for %s", f.Name)
			require.Equal(t, "function", proto.Kind)
			require.False(t, proto.Variadic, "%s is variadic: purego cannot call it directly", f.Name)
			require.NoError(t, checkFunc(reflect.TypeOf(f.Fn), proto, abitest.Targets))
		})
	}
	t.Logf("%d functions checked against the SDK", len(Funcs))
}

func checkFunc(fnPtr reflect.Type, proto *abitest.Prototype, targets []string) error {
	fn := fnPtr.Elem()
	for _, target := range targets {
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
		if d.Unchecked != "" {
			continue // TestUncheckedBindingsAreNotInFacts
		}
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
	require.Error(t, checkFunc(reflect.TypeOf(&wrongSign), facts.Prototype("mach_port_mod_refs"), abitest.Targets))
	var wrongWidth func(task uint32, options uintptr, context uint32, name *uint32) int32
	require.Error(t, checkFunc(reflect.TypeOf(&wrongWidth), facts.Prototype("mach_port_construct"), abitest.Targets))
	var wrongCount func(task uint32) int32
	require.Error(t, checkFunc(reflect.TypeOf(&wrongCount), facts.Prototype("mach_port_deallocate"), abitest.Targets))
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
			require.NoError(t, checkVariadic(reflect.TypeOf(f.Arm64).Elem(), proto, f.VarArgs, true, abitest.Targets))
			require.NoError(t, checkVariadic(reflect.TypeOf(f.Amd64).Elem(), proto, f.VarArgs, false, abitest.Targets))
		})
	}
}

func checkVariadic(fn reflect.Type, proto *abitest.Prototype, varArgs []string, arm64 bool, targets []string) error {
	for _, target := range targets {
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
	require.Error(t, checkVariadic(reflect.TypeOf(unpadded), facts.Prototype("sandbox_check"), []string{"const char *"}, true, abitest.Targets))
	require.NoError(t, checkVariadic(reflect.TypeOf(unpadded), facts.Prototype("sandbox_check"), []string{"const char *"}, false, abitest.Targets))
}

func TestCFStringEncodingUTF8MatchesSDK(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	v, ok := facts.Constant("kCFStringEncodingUTF8")
	require.True(t, ok)
	require.Equal(t, v.String(), strconv.Itoa(CFStringEncodingUTF8))
}

// Every callback's Go type matches the parameters and result of its C function-pointer typedef
// ("const struct __CFData *(*)(struct __CFMessagePort *, int, const struct __CFData *, void *)").
func TestCallbacksMatchSDK(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	for _, cb := range Callbacks {
		t.Run(cb.Typedef, func(t *testing.T) {
			td := facts.Typedefs[cb.Typedef]
			require.NotNil(t, td, "the SDK has no typedef %s", cb.Typedef)
			canonical, _ := td["canonical"].(string)
			ret, params, err := splitFuncPointer(canonical)
			require.NoError(t, err)
			require.NoError(t, checkCallback(reflect.TypeOf(cb.Type), ret, params))
		})
	}
}

// splitFuncPointer takes "R (*)(P1, P2)" apart.
func splitFuncPointer(c string) (ret string, params []string, err error) {
	i := strings.Index(c, "(*)(")
	if i < 0 || !strings.HasSuffix(c, ")") {
		return "", nil, errorf("%q is not a function pointer", c)
	}
	inner := c[i+len("(*)(") : len(c)-1]
	if strings.ContainsAny(inner, "()") {
		return "", nil, errorf("%q: nested function types are not handled", c)
	}
	if inner != "void" && inner != "" {
		for _, p := range strings.Split(inner, ",") {
			params = append(params, strings.TrimSpace(p))
		}
	}
	return strings.TrimSpace(c[:i]), params, nil
}

func checkCallback(fn reflect.Type, ret string, params []string) error {
	if fn.NumIn() != len(params) {
		return errorf("Go takes %d parameters, C %d", fn.NumIn(), len(params))
	}
	for i, c := range params {
		if err := abitest.CheckGoType(fn.In(i), c); err != nil {
			return errorf("parameter %d: %v", i, err)
		}
	}
	if ret == "void" {
		if fn.NumOut() != 0 {
			return errorf("C returns void, Go returns %d values", fn.NumOut())
		}
		return nil
	}
	if fn.NumOut() != 1 {
		return errorf("C returns %s, Go returns %d values", ret, fn.NumOut())
	}
	return abitest.CheckGoType(fn.Out(0), ret)
}

// A callback whose Go type disagrees with its typedef must be caught.
func TestCheckCallbackCatchesMismatch(t *testing.T) {
	ret, params, err := splitFuncPointer("const struct __CFData *(*)(struct __CFMessagePort *, int, const struct __CFData *, void *)")
	require.NoError(t, err)
	require.Equal(t, []string{"struct __CFMessagePort *", "int", "const struct __CFData *", "void *"}, params)
	require.NoError(t, checkCallback(reflect.TypeOf(CFMessagePortCallBackFunc(nil)), ret, params))
	var wrongWidth func(port uintptr, msgid int64, data, info uintptr) uintptr
	require.Error(t, checkCallback(reflect.TypeOf(wrongWidth), ret, params))
	var noResult func(port uintptr, msgid int32, data, info uintptr)
	require.Error(t, checkCallback(reflect.TypeOf(noResult), ret, params))
	_, _, err = splitFuncPointer("int")
	require.Error(t, err)
}

// CFMessagePortContext has the SDK's size and field offsets on both targets.
func TestCFMessagePortContextLayout(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	goType := reflect.TypeOf(CFMessagePortContext{})
	names := map[string]string{"version": "Version", "info": "Info", "retain": "Retain",
		"release": "Release", "copyDescription": "CopyDescription"}
	for _, target := range abitest.Targets {
		l := facts.Layouts[target]["CFMessagePortContext"]
		require.NotNil(t, l, target)
		require.Equal(t, l.Size, int(goType.Size()), target)
		require.Len(t, l.Fields, goType.NumField(), target)
		for _, f := range l.Fields {
			gf, ok := goType.FieldByName(names[f.Name])
			require.True(t, ok, "%s: no Go field for %s", target, f.Name)
			require.Equal(t, f.Offset, int(gf.Offset), "%s: offset of %s", target, f.Name)
			require.Equal(t, f.Size, int(gf.Type.Size()), "%s: size of %s", target, f.Name)
		}
	}
}

// A binding marked Unchecked is one the SDK facts cannot check: it must really be missing from
// them (else the mark hides a check that could run), and it must be optional, so that a system
// lacking it fails only the feature that uses it.
func TestUncheckedBindingsAreNotInFacts(t *testing.T) {
	facts, err := abitest.Load()
	require.NoError(t, err)
	libs := map[string]string{}
	var names []string
	for _, f := range Funcs {
		if f.Unchecked != "" {
			require.True(t, f.Optional, f.Name)
			names = append(names, f.Name)
			libs[f.Name] = f.Lib
		}
	}
	for _, d := range DataSymbols {
		if d.Unchecked != "" {
			require.True(t, d.Optional, d.Name)
			names = append(names, d.Name)
			libs[d.Name] = d.Lib
		}
	}
	for _, name := range names {
		require.Nil(t, facts.Prototype(name), "%s is in the SDK facts now: drop Unchecked and let the ABI test check it", name)
		// Some are exported in the facts without a prototype (task_info): what can be checked is.
		if sym := facts.Symbol(name); sym != nil {
			require.Equal(t, libs[name], sym.Library, "dylib of %s", name)
			require.Subset(t, sym.Archs, []string{"arm64", "x86_64"}, name)
		}
	}
	t.Logf("not checkable against the SDK facts: %v", names)
}
