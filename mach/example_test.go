package mach_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/machport/machport/mach"
)

// Encode a request with a reply right and decode it again: the bytes are the Darwin kernel's.
func Example_codec() {
	req := &mach.Message{
		Remote: mach.Port{Name: 0x1103, Disposition: mach.CopySend},
		Local:  mach.Port{Name: 0x2203, Disposition: mach.MakeSendOnce},
		ID:     100,
		Body:   []byte("ping"),
	}
	b, err := req.Append(nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("msgh_bits %#x, msgh_size %d\n", uint32(req.Bits()), len(b))

	got, err := mach.Decode(b)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(got.ID, got.Remote.Disposition, got.Local.Disposition, string(got.Body))
	// Output:
	// msgh_bits 0x1513, msgh_size 28
	// 100 COPY_SEND MAKE_SEND_ONCE ping
}

// Send a message to a port of our own and receive it, with a deadline.
func Example() {
	port, err := mach.NewPort(mach.PortOptions{QueueLimit: 16})
	if err != nil {
		log.Fatal(err)
	}
	defer port.Close()
	send, err := port.MakeSend()
	if err != nil {
		log.Fatal(err)
	}
	defer send.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	out := &mach.Message{Remote: mach.CopySendOf(send), ID: 7, Body: []byte("hello")}
	if err := mach.Send(ctx, out); err != nil {
		log.Fatal(err)
	}
	var in mach.Message
	if err := mach.Receive(ctx, port, &in); err != nil {
		log.Fatal(err)
	}
	defer in.Destroy()
	fmt.Printf("id %d from this process: %v: %q\n", in.ID, in.Trailer.Audit.PID() == os.Getpid(), in.Body[:5])
	// Output: id 7 from this process: true: "hello"
}

// Look at the message at the head of a port's queue (its id, size and sender) before deciding
// to receive it; Peek leaves it queued.
func ExamplePeek() {
	port, err := mach.NewPort(mach.PortOptions{QueueLimit: 16})
	if err != nil {
		log.Fatal(err)
	}
	defer port.Close()
	send, err := port.MakeSend()
	if err != nil {
		log.Fatal(err)
	}
	defer send.Close()

	if _, err := mach.Peek(port, mach.PeekOptions{}); errors.Is(err, mach.ErrNoMessage) {
		fmt.Println("nothing queued")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(send), ID: 7, Body: []byte("hello")}); err != nil {
		log.Fatal(err)
	}
	p, err := mach.Peek(port, mach.PeekOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("id", p.ID, "from this process:", p.Trailer.Audit.PID() == os.Getpid())

	var in mach.Message
	if err := mach.ReceiveWithOptions(ctx, port, &in, mach.ReceiveOptions{BufferSize: int(p.Size) + mach.TrailerAudit.Size()}); err != nil {
		log.Fatal(err)
	}
	defer in.Destroy()
	fmt.Println("received", in.ID, "with sequence number", in.Trailer.Seqno == p.Seqno)
	// Output:
	// nothing queued
	// id 7 from this process: true
	// received 7 with sequence number true
}
