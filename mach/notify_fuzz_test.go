package mach

import (
	"encoding/binary"
	"errors"
	"testing"
)

// ParseNotification reads kernel notifications from any message a port receives, so it meets
// whatever a peer sends: every message is either a notification of the kind its id names, from
// the kernel (an all-zero audit token), of that kind's size, or refused with exactly one of
// ErrNotNotification, ErrForgedNotification and ErrInvalidMessage. It never panics.
func FuzzParseNotification(f *testing.F) {
	// An audit trailer as the kernel writes it: type 0, its size, the rest (audit token 0) zero.
	kernelTrailer := make([]byte, auditTrailerSize)
	binary.LittleEndian.PutUint32(kernelTrailer[4:], auditTrailerSize)
	field := binary.LittleEndian.AppendUint32(make([]byte, ndrSize), 0x1234)
	seeds := []Message{
		{Remote: Port{Name: 1, Disposition: MoveSendOnce}, ID: int32(NotifySendOnce)},
		{Remote: Port{Name: 1, Disposition: MoveSendOnce}, ID: int32(NotifyNoSenders), Body: field},
		{Remote: Port{Name: 1, Disposition: MoveSendOnce}, ID: int32(NotifyDeadName), Body: field},
		{Remote: Port{Name: 1, Disposition: MoveSendOnce}, ID: int32(NotifyPortDeleted), Body: field},
		{Remote: Port{Name: 1, Disposition: MoveSendOnce}, ID: int32(NotifyPortDestroyed),
			Descriptors: []Descriptor{&PortDescriptor{Port: Port{Name: 2, Disposition: MoveReceive}}}},
		{Remote: Port{Name: 1, Disposition: CopySend}, ID: 3, Body: []byte("not one")},
	}
	for _, m := range seeds {
		b, err := m.Append(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(b, kernelTrailer...))
		// The seeds are what they say: each notification parses, the other message does not.
		dm, err := Decode(append(append([]byte(nil), b...), kernelTrailer...))
		if err != nil {
			f.Fatal(err)
		}
		if _, err := ParseNotification(dm); (err == nil) != IsNotificationID(m.ID) {
			f.Fatalf("seed id %d: %v", m.ID, err)
		}
		forged := append(append([]byte(nil), b...), kernelTrailer...)
		forged[len(b)+20] = 1 // audit token word 0: not the kernel
		f.Add(forged)
	}
	sizes := map[NotifyKind]uint32{NotifySendOnce: notifySendOnceSize, NotifyNoSenders: notifyWithFieldSize,
		NotifyDeadName: notifyWithFieldSize, NotifyPortDeleted: notifyWithFieldSize, NotifyPortDestroyed: notifyPortDestroyedSz}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return // FuzzDecode's business
		}
		n, err := ParseNotification(m)
		if err != nil {
			matched := 0
			for _, sentinel := range []error{ErrNotNotification, ErrForgedNotification, ErrInvalidMessage} {
				if errors.Is(err, sentinel) {
					matched++
				}
			}
			if matched != 1 {
				t.Fatalf("error %v matches %d sentinels", err, matched)
			}
			return
		}
		if n.Kind != NotifyKind(m.ID) || !m.Trailer.Audit.IsKernel() || m.Trailer.Size < auditTrailerSize {
			t.Fatalf("accepted %v (id %d) with trailer %+v", n.Kind, m.ID, m.Trailer)
		}
		if want, ok := sizes[n.Kind]; !ok || m.Size != want {
			t.Fatalf("accepted %v of %d bytes", n.Kind, m.Size)
		}
	})
}
