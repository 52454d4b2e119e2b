package notify

import "encoding/binary"

// The emulated center's one datagram (center_linux.go): a post of a name, sent by the posting
// process to every process of the user that has registrations. It is portable so that its
// decoder is fuzzed everywhere. Layout: the 4-byte magic, a version/op byte, 3 zero bytes, the
// name's length (uint32, little-endian), the name (no NUL). Anything else is garbage and dropped.
const (
	wireMagic   = "mpn\x01"
	wireOpPost  = 1
	wireHeader  = 12
	maxDatagram = wireHeader + MaxNameLen
)

// MaxNameLen is the longest name, in bytes, that the Linux emulation carries; a longer one fails
// with StatusInvalidName there. notifyd has no such limit.
const MaxNameLen = 16 << 10

// encodePost returns the datagram that posts name.
func encodePost(name string) []byte {
	b := make([]byte, wireHeader+len(name))
	copy(b, wireMagic)
	b[4] = wireOpPost
	binary.LittleEndian.PutUint32(b[8:], uint32(len(name)))
	copy(b[wireHeader:], name)
	return b
}

// decodePost returns the name a datagram posts, or false for anything that is not exactly a
// well-formed post.
func decodePost(b []byte) (string, bool) {
	if len(b) < wireHeader || string(b[:4]) != wireMagic || b[4] != wireOpPost || b[5]|b[6]|b[7] != 0 {
		return "", false
	}
	n := binary.LittleEndian.Uint32(b[8:])
	if n > MaxNameLen || uint64(len(b)-wireHeader) != uint64(n) {
		return "", false
	}
	name := b[wireHeader:]
	for _, c := range name {
		if c == 0 {
			return "", false
		}
	}
	return string(name), true
}
