// Command machping is machport's diagnostic tool for Mach services.
//
// This is its first cut: with no arguments it runs a self-test of what this platform supports
// today (the Mach message codec everywhere; ports and mach_msg where a kernel backend exists) and
// prints the result. The service commands (serve, ping, lookup, register, check, bench) come with
// the bootstrap, CFMessagePort and pairing packages.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/machport/machport/mach"
)

const version = "0.1.0-dev"

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: machping [--version]\n\nWith no arguments, run a self-test.\n")
	}
	flag.Parse()
	if *showVersion {
		fmt.Println("machping", version)
		return
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "machping: unknown command %q (only the self-test exists yet)\n", flag.Arg(0))
		os.Exit(2)
	}
	os.Exit(selfTest())
}

func selfTest() int {
	fmt.Printf("machping %s self-test on %s/%s\n", version, runtime.GOOS, runtime.GOARCH)
	if err := codecCheck(); err != nil {
		fmt.Println("codec: FAIL:", err)
		return 1
	}
	fmt.Println("codec: ok (Darwin message layout: encode, decode, 28-byte base, pack(4) descriptors)")

	rtt, err := loopback()
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		fmt.Println("mach_msg: not available here:", err)
		fmt.Println("self-test passed (codec only)")
		return 0
	case err != nil:
		fmt.Println("mach_msg: FAIL:", err)
		return 1
	}
	fmt.Printf("mach_msg: ok (send+receive to own port in %v)\n", rtt)
	fmt.Println("self-test passed")
	return 0
}

func codecCheck() error {
	m := &mach.Message{
		Remote: mach.Port{Name: 0x1103, Disposition: mach.CopySend},
		ID:     0x63666d70,
		Descriptors: []mach.Descriptor{&mach.OOLDescriptor{Address: 0x1122334455667788, Size: 0xAABBCCDD,
			Deallocate: true, Copy: mach.VirtualCopy}},
	}
	b, err := m.Append(nil)
	if err != nil {
		return err
	}
	want := []byte{0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 1, 1, 0, 1, 0xDD, 0xCC, 0xBB, 0xAA}
	if len(b) != 44 || string(b[28:44]) != string(want) {
		return fmt.Errorf("out-of-line descriptor bytes % x", b[28:])
	}
	back, err := mach.Decode(b)
	if err != nil {
		return err
	}
	if back.ID != m.ID || len(back.Descriptors) != 1 {
		return fmt.Errorf("decoded %+v", back)
	}
	return nil
}

func loopback() (time.Duration, error) {
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return 0, err
	}
	defer port.Close()
	send, err := port.MakeSend()
	if err != nil {
		return 0, err
	}
	defer send.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(send), ID: 1, Body: []byte("ping")}); err != nil {
		return 0, err
	}
	var in mach.Message
	if err := mach.Receive(ctx, port, &in); err != nil {
		return 0, err
	}
	defer in.Destroy()
	if string(in.Body) != "ping" {
		return 0, fmt.Errorf("received %q", in.Body)
	}
	return time.Since(start), nil
}
