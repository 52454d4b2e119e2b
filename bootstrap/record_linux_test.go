//go:build linux

package bootstrap

import (
	"testing"
)

// A name's record parses back to what was written, whatever the name holds; anything else is
// refused.
func TestOwnerRecord(t *testing.T) {
	const agent = "a-42-0123456789abcdef"
	for _, tc := range []struct {
		name   string
		record string
		ok     bool
		want   string // the name parsed, when ok
	}{
		{name: "plain", record: ownerRecord("com.example.a", 42, agent), ok: true, want: "com.example.a"},
		{name: "newline in the name", record: ownerRecord("a\nb", 42, agent), ok: true, want: "a\nb"},
		{name: "name shaped as a record", record: ownerRecord("x\n7\na-7-0123456789abcdef\n", 42, agent), ok: true, want: "x\n7\na-7-0123456789abcdef\n"},
		{name: "empty name", record: ownerRecord("", 42, agent), ok: true, want: ""},
		{name: "earlier format", record: "com.example.a\n42\n"},
		{name: "cut short", record: "com.example.a\n42\na-42-0123"},
		{name: "no final newline", record: "com.example.a\n42\n" + agent},
		{name: "pid with a sign", record: "com.example.a\n+42\n" + agent + "\n"},
		{name: "pid with a leading zero", record: "com.example.a\n042\n" + agent + "\n"},
		{name: "pid zero", record: "com.example.a\n0\n" + agent + "\n"},
		{name: "path as agent", record: "com.example.a\n42\n../../etc/passwd\n"},
		{name: "empty", record: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name, pid, id, ok := parseOwnerRecord([]byte(tc.record))
			if ok != tc.ok {
				t.Fatalf("parse %q: ok %v", tc.record, ok)
			}
			if ok && (name != tc.want || pid != 42 || id != agent) {
				t.Fatalf("parse %q: %q %d %q", tc.record, name, pid, id)
			}
		})
	}
}

// FuzzParseOwnerRecord: any name round-trips through its record, and any bytes found in a
// record's place parse to nothing (never panic) or to fields whose record is exactly those bytes.
func FuzzParseOwnerRecord(f *testing.F) {
	f.Add([]byte(ownerRecord("com.example.a", 42, "a-42-0123456789abcdef")), "com.example.a", 42)
	f.Add([]byte("a\nb\n1\na-1-0123456789abcdef\n"), "a\nb", 1)
	f.Add([]byte("com.example.a\n42\n"), "\n\n", 7)
	f.Add([]byte{}, "", 1)
	f.Fuzz(func(t *testing.T, b []byte, name string, pid int) {
		if n, p, id, ok := parseOwnerRecord(b); ok {
			if !validAgentID(id) || p <= 0 || ownerRecord(n, p, id) != string(b) {
				t.Fatalf("parsed %q, %d, %q from %q", n, p, id, b)
			}
		}
		if pid <= 0 {
			return
		}
		const agent = "a-1-0123456789abcdef"
		n, p, id, ok := parseOwnerRecord([]byte(ownerRecord(name, pid, agent)))
		if !ok || n != name || p != pid || id != agent {
			t.Fatalf("the record of %q, %d parsed to %q, %d, %q, %v", name, pid, n, p, id, ok)
		}
	})
}
