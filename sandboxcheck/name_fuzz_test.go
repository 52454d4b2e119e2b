package sandboxcheck_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/machport/machport/sandboxcheck"
)

func FuzzValidateName(f *testing.F) {
	seeds := []struct{ name, group string }{
		{"group.com.example.app.worker", "group.com.example"},
		{"ABCDE12345.com.example.shared.worker", "ABCDE12345.com.example.shared"},
		{"group.com.exampleworker", "group.com.example"},
		{"Group.com.example.x", "group.com.example"},
		{"group.com.example", "group.com.example"},
		{"group.com.example.", "group.com.example"},
		{"com.x.group.com.example.y", "group.com.example"},
		{"group.com", "group.com.example"},
		{"com.example.wörker", "group.com.example"},
		{"", "group.com.example"},
		{"a\x00b", "group.com.example"},
		{"\xed\xa0\x80", "group.com.example"},
		{"a\xc0\xaf", ""},
		{strings.Repeat("a", 128), "group.com.example"},
		{"group.com.example." + strings.Repeat("é", 60), "group.com.example"},
		{"x", "Group.com.example"},
		{"x", "abcde12345.com.example"},
		{"x", "group..com"},
		{"x", "group.com." + strings.Repeat("a", 115)},
		{"GROUP.COM.EXAMPLE", "group.com.example"},
	}
	for _, s := range seeds {
		f.Add(s.name, s.group)
	}
	f.Fuzz(func(t *testing.T, name, group string) {
		groupOK := sandboxcheck.ValidateGroup(group) == nil
		err := sandboxcheck.ValidateName(name, group)
		again := sandboxcheck.ValidateName(name, group)
		if (err == nil) != (again == nil) || err != nil && err.Error() != again.Error() {
			t.Fatalf("not deterministic: %v, then %v", err, again)
		}
		if err == nil {
			if !groupOK {
				t.Fatalf("ValidateName(%q, %q) = nil with a malformed group", name, group)
			}
			if !sandboxcheck.HasGroupPrefix(name, group) {
				t.Fatalf("ValidateName(%q, %q) = nil, but HasGroupPrefix is false", name, group)
			}
			return
		}
		var ne *sandboxcheck.NameError
		if !errors.As(err, &ne) {
			t.Fatalf("error %T is not a *NameError", err)
		}
		n := 0
		for _, s := range sentinels {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%v wraps %d sentinels, want 1", err, n)
		}
		if ne.Name != name {
			t.Fatalf("Name = %q, want %q", ne.Name, name)
		}
		if !strings.Contains(err.Error(), strconv.Quote(name)) {
			t.Fatalf("Error() %q does not quote the name %q", err.Error(), name)
		}
		if ne.Example != "" {
			if e := sandboxcheck.ValidateName(ne.Example, group); e != nil {
				t.Fatalf("example %q for %q is refused: %v", ne.Example, name, e)
			}
		}
		if errors.Is(err, sandboxcheck.ErrBadGroup) == groupOK && len(name) <= sandboxcheck.MaxNameLen &&
			!errors.Is(err, sandboxcheck.ErrEmptyName) && !errors.Is(err, sandboxcheck.ErrInvalidUTF8) &&
			!errors.Is(err, sandboxcheck.ErrNameHasNUL) {
			t.Fatalf("ErrBadGroup = %v, but ValidateGroup says the group is ok = %v", errors.Is(err, sandboxcheck.ErrBadGroup), groupOK)
		}
	})
}
