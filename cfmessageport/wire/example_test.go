package wire_test

import (
	"fmt"

	"github.com/machport/machport/cfmessageport/wire"
	"github.com/machport/machport/mach"
)

// A request is laid out as CF lays it out, and decodes back; a reply to it carries the negated
// conversation id.
func Example() {
	req := wire.Packet{MsgID: 7, ConvID: 1, Data: []byte("hello")}
	var m mach.Message
	if err := req.Encode(&m, mach.Port{Name: 0x1103, Disposition: mach.CopySend}, mach.Port{Name: 0x1207, Disposition: mach.MakeSendOnce}); err != nil {
		panic(err)
	}
	b, _ := m.Append(nil)
	fmt.Printf("%d bytes, msgh_bits %#x\n", len(b), uint32(m.Bits()))

	received, _ := mach.Decode(b)
	got, err := wire.Decode(received, false)
	fmt.Printf("msgid %d, convid %d, %q, %v\n", got.MsgID, got.ConvID, got.Data, err)

	_, err = wire.Decode(received, true) // as a reply it is corrupt: its convid is positive
	fmt.Println(err)
	// Output:
	// 68 bytes, msgh_bits 0x1513
	// msgid 7, convid 1, "hello", <nil>
	// cfmessageport: corrupt message: a reply with conversation id 1
}
