package mach

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// Any trailer after a message decodes to the fields its size word covers, read from the bytes
// where the SDK puts them (TestABITrailers), and none beyond: written back at those offsets
// they give the trailer's bytes again. A trailer whose words are out of range is refused with
// ErrInvalidMessage, never read past.
func FuzzDecodeTrailer(f *testing.F) {
	msg, err := (&Message{Remote: Port{Name: 1, Disposition: CopySend}, ID: 3, Body: []byte("peek")}).Append(nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range []TrailerElements{TrailerNull, TrailerSeqno, TrailerSender, TrailerAudit, TrailerContext, TrailerAV} {
		t := make([]byte, e.Size())
		for i := range t {
			t[i] = byte(i*7 + 1)
		}
		binary.LittleEndian.PutUint32(t[0:], 0)
		binary.LittleEndian.PutUint32(t[4:], uint32(e.Size()))
		f.Add(t)
	}
	f.Add([]byte{0, 0, 0, 0, 70, 0, 0, 0})
	for _, size := range []int{30, 56, 64} { // between the trailer sizes
		t := make([]byte, size)
		binary.LittleEndian.PutUint32(t[4:], uint32(size))
		f.Add(t)
	}
	f.Fuzz(func(t *testing.T, trailer []byte) {
		m, err := Decode(append(append([]byte(nil), msg...), trailer...))
		if err != nil {
			if !errors.Is(err, ErrInvalidMessage) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		tr := m.Trailer
		if tr.Size == 0 {
			if len(trailer) >= minTrailerSize {
				t.Fatalf("a trailer of %d bytes was not read", len(trailer))
			}
			return
		}
		if int(tr.Size) > len(trailer) || tr.Size < minTrailerSize || tr.Size > maxTrailerSize {
			t.Fatalf("trailer size %d with %d bytes", tr.Size, len(trailer))
		}
		// Write the decoded fields back at their offsets: the bytes they cover come back.
		var b [maxTrailerSize]byte
		le.PutUint32(b[4:], tr.Size)
		le.PutUint32(b[8:], tr.Seqno)
		le.PutUint32(b[12:], tr.Sender[0])
		le.PutUint32(b[16:], tr.Sender[1])
		for i, v := range tr.Audit {
			le.PutUint32(b[20+4*i:], v)
		}
		le.PutUint64(b[offTrailerContext:], tr.Context)
		le.PutUint32(b[offTrailerAD:], uint32(tr.AD))
		le.PutUint32(b[offTrailerLabels:], tr.Labels)
		covered := 0
		for _, size := range []int{minTrailerSize, seqnoTrailerSize, securityTrailerSize, auditTrailerSize, contextTrailerSize, macTrailerSize} {
			if size <= int(tr.Size) {
				covered = size
			}
		}
		if !bytes.Equal(b[:covered], trailer[:covered]) {
			t.Fatalf("fields read back %x, trailer %x", b[:covered], trailer[:covered])
		}
		if !bytes.Equal(b[covered:], make([]byte, maxTrailerSize-covered)) {
			t.Fatalf("fields beyond the %d bytes the size covers were set: %+v", covered, tr)
		}
	})
}
