// Package abitest loads the macOS SDK facts (testdata/darwin-abi.json) for the tests that check
// machport's Go definitions against the real ABI, and offers the comparisons they share.
//
// The JSON is a copy of shared/darwin-abi.json, made from Xcode's MacOSX13.3.sdk for both
// arm64-apple-macos13 and x86_64-apple-macos13. It is committed so the checks also run where the
// shared folder is absent (GitHub Actions); TestCopyMatchesShared keeps the copy honest.
package abitest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
)

// Targets are the two Darwin targets the SDK facts describe.
var Targets = []string{"arm64-apple-macos13", "x86_64-apple-macos13"}

// IOSTargets is the target the iOS SDK facts (testdata/ios-abi.json, LoadIOS) describe.
var IOSTargets = []string{"arm64-apple-ios17.5"}

// Facts is the part of darwin-abi.json the tests read.
type Facts struct {
	Constants         map[string]json.Number        `json:"constants"`
	ConstantInfo      map[string]ConstantInfo       `json:"constant_info"`
	PrivateConstants  map[string]json.Number        `json:"private_constants"`
	DerivedRaw        map[string]json.RawMessage    `json:"derived_constants"`
	Symbols           map[string]*Symbol            `json:"symbols"`
	ExtraSymbols      map[string]*Symbol            `json:"extra_symbols"`
	Prototypes        map[string]*Prototype         `json:"prototypes"`
	ExtraPrototypes   map[string]*Prototype         `json:"extra_prototypes"`
	PrivatePrototypes map[string]*Prototype         `json:"private_prototypes"`
	Layouts           map[string]map[string]*Layout `json:"layouts"`
	Typedefs          map[string]map[string]any     `json:"typedefs"`

	// The iOS facts only: per binding of internal/darwin, what the iOS SDK says of it, and the
	// exported symbols the iOS SDK declares in no header.
	BindingsCheck          map[string]*BindingCheck `json:"bindings_check"`
	NotInSDKHeaders        []string                 `json:"prototypes_not_in_sdk_headers"`
	ConstantsMissingOnIOS  []string                 `json:"constants_missing_on_ios"`
	PrivateConstantsSource string                   `json:"private_constants_note"`
}

// BindingCheck is what the iOS facts record of one binding.
type BindingCheck struct {
	GoLibConst           string `json:"go_lib_const"`
	IOSInstallName       string `json:"ios_install_name"`
	ExportedOnIOS        bool   `json:"exported_on_ios"`
	DeclaredInIOSHeader  bool   `json:"declared_in_ios_sdk_headers"`
	SameAsMacOSArm64     bool   `json:"prototype_same_as_macos_arm64"` // functions
	TypeSameAsMacOSArm64 bool   `json:"type_same_as_macos_arm64"`      // data symbols
}

// ConstantInfo says what C type a constant has.
type ConstantInfo struct {
	CType string `json:"c_type"`
	Size  int    `json:"size"`
}

// Symbol is one exported symbol and the dylib exporting it.
type Symbol struct {
	Library string   `json:"library"`
	Archs   []string `json:"archs"`
}

// Prototype is a function's or variable's C declaration with canonical types.
type Prototype struct {
	Kind           string              `json:"kind"`
	Params         []string            `json:"params_canonical"`
	ParamsByTarget map[string][]string `json:"params_canonical_by_target"`
	Return         string              `json:"return_canonical"`
	Variadic       bool                `json:"variadic"`
	VariableType   string              `json:"type_canonical"`
}

// ParamsFor returns the canonical parameter types on one target.
func (p *Prototype) ParamsFor(target string) []string {
	if ps, ok := p.ParamsByTarget[target]; ok {
		return ps
	}
	return p.Params
}

// Layout is a struct's size, alignment and fields on one target.
type Layout struct {
	Size      int            `json:"size"`
	Align     int            `json:"align"`
	Fields    []Field        `json:"field_info"`
	FlatField map[string]int `json:"fields_flat"`
}

// Field is one member of a struct; bitfields carry BitOffset and BitWidth.
type Field struct {
	Name      string `json:"name"`
	Offset    int    `json:"offset"`
	Size      int    `json:"size"`
	Canonical string `json:"canonical"`
	BitOffset *int   `json:"bit_offset"`
	BitWidth  *int   `json:"bit_width"`
	Anonymous bool   `json:"in_anonymous_record"`
}

// Bits returns the field's bit offset and width within the struct.
func (f Field) Bits() (offset, width int) {
	if f.BitOffset != nil && f.BitWidth != nil {
		return *f.BitOffset, *f.BitWidth
	}
	return f.Offset * 8, f.Size * 8
}

// Path is the committed copy of the macOS SDK facts.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "darwin-abi.json")
}

// IOSPath is the committed copy of the iOS SDK facts (shared/ios-abi.json: the iOS 17.5 SDK,
// cross-checked against iOS 16.4, for arm64-apple-ios17.5).
func IOSPath() string { return filepath.Join(filepath.Dir(Path()), "ios-abi.json") }

// Load parses the macOS SDK facts once.
var Load = sync.OnceValues(func() (*Facts, error) { return parse(Path()) })

// LoadIOS parses the iOS SDK facts once. They lack what the iOS SDK does not declare, such as
// the BOOTSTRAP_* codes of bootstrap.h (ConstantsMissingOnIOS): tests take those from Load's
// macOS facts, which is what the iOS facts' own private constants are copied from too.
var LoadIOS = sync.OnceValues(func() (*Facts, error) { return parse(IOSPath()) })

func parse(path string) (*Facts, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var f Facts
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("abitest: %s: %w", path, err)
	}
	return &f, nil
}

// Symbol returns the export record of a symbol, from the main or the extra table.
func (f *Facts) Symbol(name string) *Symbol {
	if s := f.Symbols[name]; s != nil {
		return s
	}
	return f.ExtraSymbols[name]
}

// Prototype returns the declaration of a function or variable, from the main or the extra table.
func (f *Facts) Prototype(name string) *Prototype {
	if p := f.Prototypes[name]; p != nil {
		return p
	}
	if p := f.ExtraPrototypes[name]; p != nil {
		return p
	}
	return f.PrivatePrototypes[name]
}

// Constant returns the SDK value of a constant (public or private table).
func (f *Facts) Constant(name string) (json.Number, bool) {
	if v, ok := f.Constants[name]; ok {
		return v, true
	}
	v, ok := f.PrivateConstants[name]
	return v, ok
}

// Derived returns a derived constant (a C expression's value), which may differ by architecture
// ("arm64" or "x86_64").
func (f *Facts) Derived(expr, arch string) (int64, error) {
	raw, ok := f.DerivedRaw[expr]
	if !ok {
		return 0, fmt.Errorf("no derived constant %q", expr)
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil
	}
	var byArch map[string]int64
	if err := json.Unmarshal(raw, &byArch); err != nil {
		return 0, fmt.Errorf("derived constant %q: %w", expr, err)
	}
	v, ok := byArch[arch]
	if !ok {
		return 0, fmt.Errorf("derived constant %q has no value for %s", expr, arch)
	}
	return v, nil
}

// CheckGoType reports whether a Go type has the width and signedness of a canonical C type as
// the SDK spells it ("unsigned int", "long", "struct mach_port_options *", "char *", ...).
// Pointers must match pointee width where the Go side names a pointee; unsafe.Pointer and
// uintptr stand for any pointer.
func CheckGoType(goType reflect.Type, cType string) error {
	c := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(cType), "const "))
	// A const pointer variable ("const struct __CFString *const") reads as its pointer type.
	c = strings.TrimSpace(strings.TrimSuffix(c, "const"))
	if c == "dispatch_object_t" {
		// libdispatch's transparent union of object pointers: passed as its first member.
		c = "struct dispatch_object_s *"
	}
	switch c {
	case "double", "float":
		want := map[string]reflect.Kind{"double": reflect.Float64, "float": reflect.Float32}[c]
		if goType.Kind() != want {
			return fmt.Errorf("Go %s does not match C %q (want %s)", goType, cType, want)
		}
		return nil
	}
	if i := strings.Index(c, "["); i > 0 && strings.HasSuffix(c, "]") {
		c = strings.TrimSpace(c[:i]) + " *" // an array parameter decays to a pointer (name_t)
	}
	if strings.HasSuffix(c, "*") || strings.Contains(c, "(*)") {
		switch goType.Kind() {
		case reflect.UnsafePointer, reflect.Uintptr:
			return nil
		case reflect.String:
			if c == "char *" {
				return nil
			}
		case reflect.Pointer:
			if strings.Contains(c, "(*)") {
				break
			}
			elem := strings.TrimSpace(strings.TrimSuffix(c, "*"))
			if strings.HasPrefix(elem, "struct ") || strings.HasSuffix(elem, "_t") {
				return nil // an opaque or struct pointee: any Go pointer of matching role
			}
			return CheckGoType(goType.Elem(), elem)
		}
		return fmt.Errorf("C %q is a pointer; Go %s is not", cType, goType)
	}
	type want struct {
		bits   int
		signed bool
	}
	var w want
	switch c {
	case "char", "signed char":
		w = want{8, true}
	case "unsigned char", "_Bool", "bool":
		w = want{8, false}
	case "short":
		w = want{16, true}
	case "unsigned short":
		w = want{16, false}
	case "int":
		w = want{32, true}
	case "unsigned int":
		w = want{32, false}
	case "long", "long long":
		w = want{64, true}
	case "unsigned long", "unsigned long long":
		w = want{64, false}
	case "void":
		return fmt.Errorf("C void has no Go value type")
	case "enum sandbox_filter_type":
		// The SDK facts record its underlying type: unsigned int (no negative enumerators).
		w = want{32, false}
	default:
		return fmt.Errorf("abitest: no rule for C type %q", cType)
	}
	var bits int
	var signed bool
	switch goType.Kind() {
	case reflect.Int8:
		bits, signed = 8, true
	case reflect.Uint8, reflect.Bool:
		bits = 8
	case reflect.Int16:
		bits, signed = 16, true
	case reflect.Uint16:
		bits = 16
	case reflect.Int32:
		bits, signed = 32, true
	case reflect.Uint32:
		bits = 32
	case reflect.Int64, reflect.Int:
		bits, signed = 64, true
	case reflect.Uint64, reflect.Uint, reflect.Uintptr:
		bits = 64
	default:
		return fmt.Errorf("Go %s cannot carry C %q", goType, cType)
	}
	if bits != w.bits || signed != w.signed {
		return fmt.Errorf("Go %s (%d-bit, signed=%v) does not match C %q (%d-bit, signed=%v)",
			goType, bits, signed, cType, w.bits, w.signed)
	}
	return nil
}
