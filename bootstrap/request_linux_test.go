//go:build linux

package bootstrap

import (
	"bytes"
	"os"
	"testing"
)

// The agent takes exactly the requests a look-up sends: the key of a global or a per-PID name,
// after the magic, and nothing else.
func TestDecodeLookUp(t *testing.T) {
	global, err := paths("com.example.a", 0)
	if err != nil {
		t.Fatal(err)
	}
	perPID, err := paths("com.example.a", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	maxPID := "p4294967295-" + global.key[2:]
	for _, tc := range []struct {
		name string
		req  []byte
		key  string // "" when refused
	}{
		{name: "global", req: encodeLookUp(global.key), key: global.key},
		{name: "per-PID", req: encodeLookUp(perPID.key), key: perPID.key},
		{name: "ten-digit pid", req: encodeLookUp(maxPID), key: maxPID},
		{name: "eleven-digit pid", req: encodeLookUp("p12345678901-" + global.key[2:])},
		{name: "pid with a leading zero", req: encodeLookUp("p012-" + global.key[2:])},
		{name: "empty pid", req: encodeLookUp("p-" + global.key[2:])},
		{name: "empty", req: nil},
		{name: "magic only", req: []byte(lookUpMagic)},
		{name: "wrong magic", req: append([]byte("mpL2"), global.key...)},
		{name: "hash too short", req: encodeLookUp(global.key[:len(global.key)-1])},
		{name: "hash too long", req: encodeLookUp(global.key + "0")},
		{name: "upper-case hash", req: encodeLookUp("g-" + string(bytes.ToUpper([]byte(global.key[2:]))))},
		{name: "path in the key", req: encodeLookUp("g-../../../../etc/passwd0000000000")},
		{name: "other scope", req: encodeLookUp("x-" + global.key[2:])},
		{name: "trailing NUL", req: append(encodeLookUp(global.key), 0)},
		{name: "oversized", req: append(encodeLookUp(global.key), make([]byte, 1<<16)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := decodeLookUp(tc.req)
			if tc.key == "" {
				if err == nil {
					t.Fatalf("decoded %q", key)
				}
				return
			}
			if err != nil || key != tc.key {
				t.Fatalf("got %q, %v; want %q", key, err, tc.key)
			}
		})
	}
}

// FuzzDecodeLookUp: any bytes a peer sends the agent decode to a well-formed key or to
// errBadRequest, never panic, and a decoded request is exactly the encoding of its key.
func FuzzDecodeLookUp(f *testing.F) {
	f.Add(encodeLookUp("g-0123456789abcdef0123456789abcdef"))
	f.Add(encodeLookUp("p4242-0123456789abcdef0123456789abcdef"))
	f.Add([]byte(lookUpMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		key, err := decodeLookUp(b)
		if err != nil {
			if err != errBadRequest {
				t.Fatalf("error %v", err)
			}
			return
		}
		if !validKey(key) || len(key) > maxKeyLen || !bytes.Equal(encodeLookUp(key), b) {
			t.Fatalf("decoded %q from %q", key, b)
		}
	})
}
