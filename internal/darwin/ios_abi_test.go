package darwin

import (
	"reflect"
	"strconv"
	"testing"

	"github.com/machport/machport/internal/abitest"
	"github.com/stretchr/testify/require"
)

// The same checks as bindings_test.go, against the iOS SDK's facts (ios-abi.json): every binding
// is exported on iOS by the image the loader opens there (ImageOn(IOS, ...): the flat framework
// paths), and its Go type matches the iOS prototype on arm64-apple-ios17.5. Symbols the iOS SDK
// declares in no header (bootstrap_*, SecTask*, proc_pidpath, ...) are checked against the
// prototypes the facts re-declared from macOS and compiled for iOS.

func iosFacts(t *testing.T) *abitest.Facts {
	t.Helper()
	f, err := abitest.LoadIOS()
	require.NoError(t, err)
	return f
}

// iosLibrary is the install name iOS's SDK gives the image exporting a symbol the macOS tables
// place in lib: a framework's is flat; a system dylib keeps its path.
func iosLibrary(lib string) string {
	if lib == LibCoreFoundation || lib == LibSecurity {
		return ImageOn(IOS, lib)
	}
	return lib
}

func TestFuncsMatchIOSSDK(t *testing.T) {
	facts := iosFacts(t)
	n := 0
	for _, f := range Funcs {
		if f.Unchecked != "" {
			continue // not in the macOS facts either; TestUncheckedBindingsAreNotInIOSFacts
		}
		n++
		t.Run(f.Name, func(t *testing.T) {
			sym := facts.Symbol(f.Name)
			require.NotNil(t, sym, "iOS exports no %s", f.Name)
			require.Equal(t, iosLibrary(f.Lib), sym.Library, "iOS image of %s", f.Name)
			proto := facts.Prototype(f.Name)
			require.NotNil(t, proto, "no iOS prototype for %s", f.Name)
			require.Equal(t, "function", proto.Kind)
			require.False(t, proto.Variadic)
			require.NoError(t, checkFunc(reflect.TypeOf(f.Fn), proto, abitest.IOSTargets))
		})
	}
	t.Logf("%d functions checked against the iOS SDK", n)
}

func TestDataSymbolsMatchIOSSDK(t *testing.T) {
	facts := iosFacts(t)
	for _, d := range DataSymbols {
		if d.Unchecked != "" {
			continue
		}
		sym := facts.Symbol(d.Name)
		require.NotNil(t, sym, "iOS exports no %s", d.Name)
		require.Equal(t, iosLibrary(d.Lib), sym.Library, "iOS image of %s", d.Name)
		proto := facts.Prototype(d.Name)
		if proto == nil {
			// SANDBOX_CHECK_NO_REPORT: a private data symbol, whose type no header declares on
			// either system; the macOS facts' private table gives it.
			mac, err := abitest.Load()
			require.NoError(t, err)
			proto = mac.Prototype(d.Name)
		}
		require.NotNil(t, proto, "no declaration for %s", d.Name)
		require.Equal(t, "variable", proto.Kind)
		require.NoError(t, abitest.CheckGoType(reflect.TypeOf(d.Type), proto.VariableType), d.Name)
	}
}

// iOS is arm64 only: the arm64 variant of each variadic binding is the one iOS calls.
func TestVariadicFuncsMatchIOSSDK(t *testing.T) {
	facts := iosFacts(t)
	for _, f := range VariadicFuncs {
		sym := facts.Symbol(f.Name)
		require.NotNil(t, sym, "iOS exports no %s", f.Name)
		require.Equal(t, iosLibrary(f.Lib), sym.Library)
		proto := facts.Prototype(f.Name)
		require.NotNil(t, proto)
		require.True(t, proto.Variadic)
		require.NoError(t, checkVariadic(reflect.TypeOf(f.Arm64).Elem(), proto, f.VarArgs, true, abitest.IOSTargets))
	}
}

func TestCallbacksAndContextMatchIOSSDK(t *testing.T) {
	facts := iosFacts(t)
	for _, cb := range Callbacks {
		td := facts.Typedefs[cb.Typedef]
		require.NotNil(t, td, "the iOS SDK has no typedef %s", cb.Typedef)
		canonical, _ := td["canonical"].(string)
		ret, params, err := splitFuncPointer(canonical)
		require.NoError(t, err)
		require.NoError(t, checkCallback(reflect.TypeOf(cb.Type), ret, params))
	}
	goType := reflect.TypeOf(CFMessagePortContext{})
	l := facts.Layouts[abitest.IOSTargets[0]]["CFMessagePortContext"]
	require.NotNil(t, l)
	require.Equal(t, l.Size, int(goType.Size()))
	require.Len(t, l.Fields, goType.NumField())
	for i, f := range l.Fields {
		require.Equal(t, f.Offset, int(goType.Field(i).Offset), f.Name)
		require.Equal(t, f.Size, int(goType.Field(i).Type.Size()), f.Name)
	}
	v, ok := facts.Constant("kCFStringEncodingUTF8")
	require.True(t, ok)
	require.Equal(t, v.String(), strconv.Itoa(CFStringEncodingUTF8))
}

// The iOS facts record, for each binding of the main table, whether iOS exports it, from which
// image, and whether its prototype is the macOS arm64 one. Every binding they name is one of
// ours, exported, found where the loader looks on iOS, and of the same type as on macOS.
func TestIOSBindingsCheck(t *testing.T) {
	facts := iosFacts(t)
	ours := bindingNames()
	for name, c := range facts.BindingsCheck {
		require.Contains(t, ours, name, "ios-abi.json checks %s, which is not bound", name)
		require.True(t, c.ExportedOnIOS, "%s is not exported on iOS", name)
		require.True(t, c.SameAsMacOSArm64 || c.TypeSameAsMacOSArm64, "%s has another prototype on iOS", name)
		require.Equal(t, iosLibrary(ours[name]), c.IOSInstallName, name)
	}
}

func TestUncheckedBindingsAreNotInIOSFacts(t *testing.T) {
	facts := iosFacts(t)
	for _, f := range Funcs {
		if f.Unchecked != "" {
			// Some are exported in the facts without a prototype (task_info): only a prototype
			// would let the ABI test check them.
			require.Nil(t, facts.Prototype(f.Name), "%s has a prototype in the iOS facts now", f.Name)
		}
	}
}

// bindingNames maps every bound symbol to its dylib (the macOS name).
func bindingNames() map[string]string {
	out := map[string]string{}
	for _, f := range Funcs {
		out[f.Name] = f.Lib
	}
	for _, f := range VariadicFuncs {
		out[f.Name] = f.Lib
	}
	for _, d := range DataSymbols {
		out[d.Name] = d.Lib
	}
	return out
}

// The bootstrap codes: the iOS SDK has no bootstrap.h, so the iOS facts lack BOOTSTRAP_*; the
// values machport uses on iOS are the macOS facts' (launchd's, as on macOS). This test keeps
// that true: when the iOS facts gain them, it fails and the iOS values are to be checked.
func TestBootstrapConstantsComeFromMacOSFacts(t *testing.T) {
	facts := iosFacts(t)
	mac, err := abitest.Load()
	require.NoError(t, err)
	for _, name := range []string{"BOOTSTRAP_SUCCESS", "BOOTSTRAP_NOT_PRIVILEGED", "BOOTSTRAP_NAME_IN_USE",
		"BOOTSTRAP_UNKNOWN_SERVICE", "BOOTSTRAP_SERVICE_ACTIVE", "BOOTSTRAP_BAD_COUNT", "BOOTSTRAP_NO_MEMORY"} {
		require.Contains(t, facts.ConstantsMissingOnIOS, name)
		v, _ := facts.Constant(name) // listed with a null value
		require.Empty(t, v.String(), "the iOS facts have %s now: check bootstrap's codes against them", name)
		_, onMac := mac.Constant(name)
		require.True(t, onMac, "%s", name)
	}
}
