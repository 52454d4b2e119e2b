package cfmessageport

import (
	"sync"

	"github.com/machport/machport/mach"
)

// outMessages recycles the messages requests and replies are sent from, with their buffers: a
// fresh message costs an allocation for its body and another for the encoding mach.Send makes,
// each as large as an inline payload.
var outMessages = sync.Pool{New: func() any { return new(mach.Message) }}

func getOutMessage() *mach.Message { return outMessages.Get().(*mach.Message) }

// putOutMessage recycles m once it is sent (or its send failed and was cleaned up). Only an
// inline message comes back, with its buffers but not its ports: one that carried out-of-line
// memory may still refer to that memory inside mach.Message, where it cannot be let go, and
// saves little anyway (its buffers are small).
func putOutMessage(m *mach.Message) {
	if len(m.Descriptors) > 0 {
		return
	}
	m.Remote, m.Local, m.Voucher = mach.Port{}, mach.Port{}, mach.Port{}
	outMessages.Put(m)
}
