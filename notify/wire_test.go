package notify

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPostDatagramRoundTrip(t *testing.T) {
	for _, name := range []string{"", "a", "com.apple.system.timezone", string(bytes.Repeat([]byte{'n'}, MaxNameLen))} {
		got, ok := decodePost(encodePost(name))
		require.True(t, ok)
		require.Equal(t, name, got)
	}
	for _, bad := range [][]byte{
		nil,
		[]byte("mpn\x01"),
		append(encodePost("ab"), 'c'),
		encodePost("a\x00b"),
		encodePost(string(bytes.Repeat([]byte{'n'}, MaxNameLen+1))),
		func() []byte { b := encodePost("x"); b[5] = 1; return b }(),
	} {
		_, ok := decodePost(bad)
		require.False(t, ok, "%q", bad)
	}
}

// FuzzDecodePost: the agent's decoder never panics, accepts only what encodePost makes, and
// gives back the name it was made from.
func FuzzDecodePost(f *testing.F) {
	f.Add(encodePost("com.example.x"))
	f.Add([]byte("garbage"))
	f.Add(encodePost(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		name, ok := decodePost(b)
		if !ok {
			return
		}
		if !bytes.Equal(encodePost(name), b) {
			t.Fatalf("accepted %q, which encodes as %q", b, encodePost(name))
		}
	})
}
