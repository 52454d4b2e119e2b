//go:build linux

package notify_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/notify"
)

func init() {
	extraRoles["notify-echo"] = childNotifyEcho
	extraRoles["dgram-echo"] = childDgramEcho
}

// childNotifyEcho watches NAME.ping and posts NAME.pong at each delivery.
func childNotifyEcho(name string) error {
	sub, err := notify.Watch(context.Background(), name+".ping")
	if err != nil {
		return err
	}
	defer sub.Cancel()
	go func() { _, _ = os.Stdin.Read(make([]byte, 1)); sub.Cancel() }()
	fmt.Println("ready")
	for range sub.C() {
		if err := notify.Post(name + ".pong"); err != nil {
			return err
		}
	}
	return nil
}

// childDgramEcho binds a Unix datagram socket at the path NAME and echoes each datagram.
func childDgramEcho(path string) error {
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer os.Remove(path)
	go func() { _, _ = os.Stdin.Read(make([]byte, 1)); conn.Close() }()
	fmt.Println("ready")
	buf := make([]byte, 256)
	for {
		n, from, err := conn.ReadFromUnix(buf)
		if err != nil {
			return nil
		}
		if _, err := conn.WriteToUnix(buf[:n], from); err != nil {
			return err
		}
	}
}

// BenchmarkCrossProcessPostToDelivery is a ping-pong of notifications with a child process: post
// NAME.ping here, the child's subscription receives it and posts NAME.pong, this process's
// subscription receives that. One op is two post-to-delivery crossings; ns/delivery is half an
// op. The unixgram baseline does the same with a 12-byte datagram echoed by a child through a
// Unix datagram socket (Go's net package on both sides), in the same run.
func BenchmarkCrossProcessPostToDelivery(b *testing.B) {
	b.Run("notify", func(b *testing.B) {
		name := testproc.UniqueName(b, "com.machport.bench.notify")
		child := testproc.Start(b, "notify-echo", name)
		if l := child.Line(b); l != "ready" {
			b.Fatal(l)
		}
		sub, err := notify.Watch(context.Background(), name+".pong")
		if err != nil {
			b.Fatal(err)
		}
		defer sub.Cancel()
		b.ResetTimer()
		for range b.N {
			if err := notify.Post(name + ".ping"); err != nil {
				b.Fatal(err)
			}
			<-sub.C()
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2, "ns/delivery")
	})
	b.Run("unixgram", func(b *testing.B) {
		dir := b.TempDir()
		path := filepath.Join(dir, "echo")
		child := testproc.Start(b, "dgram-echo", path)
		if l := child.Line(b); l != "ready" {
			b.Fatal(l)
		}
		me, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "me"), Net: "unixgram"})
		if err != nil {
			b.Fatal(err)
		}
		defer me.Close()
		to := &net.UnixAddr{Name: path, Net: "unixgram"}
		msg, buf := make([]byte, 12), make([]byte, 256)
		b.ResetTimer()
		for range b.N {
			if _, err := me.WriteToUnix(msg, to); err != nil {
				b.Fatal(err)
			}
			if _, _, err := me.ReadFromUnix(buf); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2, "ns/delivery")
	})
}
