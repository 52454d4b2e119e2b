//go:build linux

package libsystemdouble

import (
	"testing"
	"unsafe"

	"github.com/machport/machport/internal/darwin"
)

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
