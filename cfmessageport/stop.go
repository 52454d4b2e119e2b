package cfmessageport

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"

	"github.com/machport/machport/mach"
)

// stopID is the msgh_id of the message a Server or Remote sends itself to end its receive loop,
// or, on a Remote's reply port, to wake the requester receiving there when the remote becomes
// invalid. The receives wait without a cancellable context (a requester's may have none either),
// because that lets the emulation block in one system call per message instead of arming a
// waiter each time; a message is what wakes them.
const stopID = 0x6d707374

// stopper is a receive loop's stop message: a random nonce, accepted only from this process.
type stopper [16]byte

func newStopper() stopper {
	var s stopper
	_, _ = rand.Read(s[:])
	return s
}

// send queues the stop message on port, behind whatever is queued there already.
func (s *stopper) send(port *mach.ReceiveRight) error {
	so, err := port.MakeSendOnce()
	if err != nil {
		return err
	}
	if err := mach.Send(context.Background(), &mach.Message{Remote: mach.MoveSendOnceOf(so), ID: stopID, Body: s[:]}); err != nil {
		so.Close()
		return err
	}
	return nil
}

// is reports whether m is this stopper's message.
func (s *stopper) is(m *mach.Message) bool {
	return m.ID == stopID && len(m.Body) >= len(s) && bytes.Equal(m.Body[:len(s)], s[:]) &&
		m.Trailer.Audit.PID() == os.Getpid()
}
