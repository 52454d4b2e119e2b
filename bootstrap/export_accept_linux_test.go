package bootstrap

import (
	"net"
	"os"
	"sync/atomic"
)

// FailAccepts makes the next n accepts of look-up connections fail with errno, as accept4 fails
// them, until the returned func restores normal accepts. failed receives once per failure, after
// it was returned to the namespace.
func FailAccepts(n int, errno error) (failed <-chan struct{}, restore func()) {
	ch := make(chan struct{}, n)
	var left atomic.Int64
	left.Store(int64(n))
	f := func() error {
		if left.Add(-1) < 0 {
			return nil
		}
		// The namespace reads the error when this returns; the send only says it did so.
		defer func() { ch <- struct{}{} }()
		return &net.OpError{Op: "accept", Net: "unixpacket", Err: os.NewSyscallError("accept4", errno)}
	}
	acceptFault.Store(&f)
	return ch, func() { acceptFault.Store(nil) }
}
