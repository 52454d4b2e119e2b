//go:build linux

package libsystemdouble

import (
	"testing"
	"unsafe"

	"github.com/machport/machport/internal/darwin"
)

// The requirement subset: what parses, and what fails as a syntax error (errSecCSReqInvalid).
func TestParseRequirement(t *testing.T) {
	for _, tc := range []struct {
		text string
		n    int // clauses; 0: does not parse
	}{
		{`identifier "com.example"`, 1},
		{`identifier = "com.example"`, 1},
		{`identifier com.example`, 1},
		{`cdhash H"a1b2"`, 1},
		{`identifier "a" and cdhash H"a1b2"`, 2},
		{``, 0},
		{`identifier`, 0},
		{`identifier "a" and`, 0},
		{`identifier "a" and and`, 0},
		{`identifier "a" or identifier "b"`, 0},
		{`identifier "a`, 0},
		{`cdhash H"zz"`, 0},
		{`cdhash H""`, 0},
		{`cdhash a1b2`, 0},
		{`anchor apple generic`, 0}, // outside the subset
	} {
		got, ok := parseRequirement(tc.text)
		if ok != (tc.n > 0) || len(got) != tc.n {
			t.Errorf("parseRequirement(%q) = %v, %v; want %d clauses", tc.text, got, ok, tc.n)
		}
	}
}

// A dictionary made with the CFType callbacks retains its keys and values, and releases them when
// it is freed, as CF's does: the caller's own references can go first.
func TestDictionaryRetainsItsMembers(t *testing.T) {
	Install()
	before := CFObjects()
	b := []byte("token")
	data := darwin.CFDataCreate(0, unsafe.Pointer(&b[0]), int64(len(b)))
	key := darwin.ReadUintptr(darwin.SecGuestAttributeAuditAddr)
	keys, values := [1]uintptr{key}, [1]uintptr{data}
	dict := darwin.CFDictionaryCreate(0, unsafe.Pointer(&keys[0]), unsafe.Pointer(&values[0]), 1,
		darwin.CFTypeDictionaryKeyCallBacksAddr, darwin.CFTypeDictionaryValueCallBacksAddr)
	darwin.CFRelease(data)
	if got := CFObjects(); got != before+2 {
		t.Fatalf("after releasing the data the dictionary holds: %d objects, want %d", got, before+2)
	}
	if dictionaryGet(dict, guestAttributeAudit) != data {
		t.Fatal("the dictionary lost its value")
	}
	darwin.CFRelease(dict)
	if got := CFObjects(); got != before {
		t.Fatalf("after releasing the dictionary: %d objects, want %d", got, before)
	}
	if cfGet(key).refs != 1 {
		t.Fatal("the constant key was released once too often or not at all")
	}
}
