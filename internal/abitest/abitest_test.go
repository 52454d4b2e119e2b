package abitest

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// The committed copies must be the shared SDK facts byte for byte, when the shared folder is beside
// the repository (it is on the project's own machines; GitHub runners have only the copies).
func TestCopyMatchesShared(t *testing.T) {
	for _, name := range []string{"darwin-abi.json", "ios-abi.json"} {
		t.Run(name, func(t *testing.T) {
			shared := filepath.Join(filepath.Dir(Path()), "..", "..", "..", "..", "shared", name)
			want, err := os.ReadFile(shared)
			if os.IsNotExist(err) {
				t.Skipf("no shared folder at %s (only the committed copy is checked)", shared)
			}
			require.NoError(t, err)
			got, err := os.ReadFile(filepath.Join(filepath.Dir(Path()), name))
			require.NoError(t, err)
			require.True(t, bytes.Equal(want, got), "internal/abitest/testdata/%s differs from %s: copy it again", name, shared)
		})
	}
}

func TestLoad(t *testing.T) {
	f, err := Load()
	require.NoError(t, err)
	require.NotEmpty(t, f.Constants)
	require.Contains(t, f.Layouts, Targets[0])
	require.Contains(t, f.Layouts, Targets[1])
	v, err := f.Derived("(boolean_t)-1 < 0 /* boolean_t is signed */", "x86_64")
	require.NoError(t, err)
	require.Equal(t, int64(0), v)
	v, err = f.Derived("round_msg(25)", "arm64")
	require.NoError(t, err)
	require.Equal(t, int64(28), v)
}

func TestCheckGoType(t *testing.T) {
	var (
		u32 uint32
		i32 int32
		u64 uint64
		i64 int64
		pu  *uint32
		pi  *int32
		ptr unsafe.Pointer
		s   string
		f64 float64
		f32 float32
		up  uintptr
	)
	cases := []struct {
		goType any
		cType  string
		ok     bool
	}{
		{u32, "unsigned int", true},
		{i32, "int", true},
		{i32, "unsigned int", false},
		{u32, "int", false},
		{u64, "unsigned long", true},
		{u64, "unsigned long long", true},
		{i64, "long", true},
		{u64, "long", false},
		{u32, "unsigned long", false},
		{pu, "unsigned int *", true},
		{pi, "unsigned int *", false},
		{pi, "int *", true},
		{ptr, "struct mach_port_options *", true},
		{ptr, "mach_msg_header_t *", true},
		{s, "char *", true},
		{s, "const char *", true},
		{u32, "char *", false},
		{s, "unsigned int *", false},
		{s, "char[128]", true},
		{s, "const char[128]", true},
		{u32, "char[128]", false},
		{f64, "double", true},
		{f32, "float", true},
		{f32, "double", false},
		{i64, "double", false},
		{f64, "long", false},
		{up, "const struct __CFString *const", true},
		{u32, "const struct __CFString *const", false},
		{up, "dispatch_object_t", true},
		{u32, "dispatch_object_t", false},
	}
	for _, c := range cases {
		err := CheckGoType(reflect.TypeOf(c.goType), c.cType)
		if c.ok {
			require.NoError(t, err, "%T vs %q", c.goType, c.cType)
		} else {
			require.Error(t, err, "%T vs %q", c.goType, c.cType)
		}
	}
}

// The iOS facts parse into the same shape: arm64 layouts, the bindings' checks, and the bootstrap
// codes listed as missing (the tests take them from the macOS facts).
func TestLoadIOS(t *testing.T) {
	f, err := LoadIOS()
	require.NoError(t, err)
	require.Contains(t, f.Layouts, IOSTargets[0])
	require.NotEmpty(t, f.BindingsCheck)
	require.Contains(t, f.ConstantsMissingOnIOS, "BOOTSTRAP_NOT_PRIVILEGED")
	require.NotNil(t, f.Prototype("mach_msg"))
	require.Equal(t, "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation", f.Symbol("CFRelease").Library)
}

// Every struct the iOS facts lay out has, on arm64-apple-ios17.5, the macOS arm64 layout: size,
// alignment, and each field's offset and size. So the tests that hold machport's message codec
// against the macOS arm64 layouts hold it on iOS too.
func TestIOSLayoutsAreMacOSArm64s(t *testing.T) {
	ios, err := LoadIOS()
	require.NoError(t, err)
	mac, err := Load()
	require.NoError(t, err)
	iosLayouts := ios.Layouts[IOSTargets[0]]
	macLayouts := mac.Layouts[Targets[0]]
	require.NotEmpty(t, iosLayouts)
	compared := 0
	for name, l := range iosLayouts {
		m := macLayouts[name]
		if m == nil {
			continue // not a macOS fact (described for iOS only)
		}
		require.Equal(t, m.Size, l.Size, "%s size", name)
		require.Equal(t, m.Align, l.Align, "%s alignment", name)
		require.Len(t, l.Fields, len(m.Fields), name)
		for i, f := range l.Fields {
			require.Equal(t, m.Fields[i].Name, f.Name, name)
			require.Equal(t, m.Fields[i].Offset, f.Offset, "%s.%s offset", name, f.Name)
			require.Equal(t, m.Fields[i].Size, f.Size, "%s.%s size", name, f.Name)
			mo, mw := m.Fields[i].Bits()
			io, iw := f.Bits()
			require.Equal(t, [2]int{mo, mw}, [2]int{io, iw}, "%s.%s bits", name, f.Name)
		}
		compared++
	}
	require.Greater(t, compared, 30)
	t.Logf("%d iOS layouts equal to macOS arm64's", compared)
}
