package mach_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// Cross-process tests re-exec this test binary as the peer. The peer's role is in
// MACHPORT_TEST_ROLE; it receives a send right to the parent's port through handOff (a socket
// with SCM_RIGHTS on Linux, a bootstrap name on macOS) and talks to the parent over Mach only.
const roleEnv = "MACHPORT_TEST_ROLE"

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		run := runPeer
		if baseline, ok := baselinePeers[role]; ok {
			run = func(string) error { return baseline() }
		}
		if err := run(role); err != nil {
			fmt.Fprintln(os.Stderr, "peer:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// baselinePeers are peers that speak plain sockets, for benchmark baselines.
var baselinePeers = map[string]func() error{}

// Message ids between the parent and a peer.
const (
	idHello = 1000 + iota // peer → parent: a send right to the peer's port, and its pid
	idEcho                // parent → peer: reply with the body, or a digest of out-of-line data
	idQuit                // parent → peer: exit
	idStop                // parent → "keep" peer: report how many reply rights you keep, then stop receiving
	idKept                // "keep" peer → parent: the count, in the body's first byte
)

// startPeer runs this binary as a peer in role, handing it a send right to parent.
func startPeer(t testing.TB, role string, parent *mach.SendRight) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.Stderr = os.Stderr
	after := handOff(t, cmd, parent)
	require.NoError(t, cmd.Start())
	after()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// hello waits for a peer's first message and returns the send right it carries.
func hello(t testing.TB, ctx context.Context, port *mach.ReceiveRight) (*mach.SendRight, int) {
	t.Helper()
	var m mach.Message
	require.NoError(t, mach.Receive(ctx, port, &m))
	require.Equal(t, int32(idHello), m.ID)
	r, err := m.TakePort(0)
	require.NoError(t, err)
	s := r.(*mach.SendRight)
	t.Cleanup(func() { s.Close() })
	return s, int(binary.LittleEndian.Uint32(m.Body))
}

// startEchoPeer starts an "echo" peer and returns a send right to its port.
func startEchoPeer(t testing.TB, ctx context.Context) *mach.SendRight {
	t.Helper()
	port, s := newPort(t, mach.PortOptions{})
	startPeer(t, "echo", s)
	peer, _ := hello(t, ctx, port)
	return peer
}

func runPeer(role string) error {
	parent, err := acceptHandOff()
	if err != nil {
		return err
	}
	ctx := context.Background()
	port, err := mach.NewPort(mach.PortOptions{QueueLimit: 64})
	if err != nil {
		return err
	}
	pid := binary.LittleEndian.AppendUint32(nil, uint32(os.Getpid()))
	helloMsg := &mach.Message{Remote: mach.CopySendOf(parent), ID: idHello, Body: pid,
		Descriptors: []mach.Descriptor{&mach.PortDescriptor{Port: mach.MakeSendOf(port)}}}
	if err := mach.Send(ctx, helloMsg); err != nil {
		return err
	}
	switch role {
	case "hold": // keep the send right to the parent until killed
		select {}
	case "echo":
		return echo(ctx, port)
	case "pong":
		return pong(ctx, port, parent)
	case "keep":
		return keep(ctx, port, parent)
	case "forward":
		return forward(ctx, port)
	}
	return fmt.Errorf("unknown role %q", role)
}

// echo answers idEcho requests on their reply right until idQuit.
func echo(ctx context.Context, port *mach.ReceiveRight) error {
	var in mach.Message
	for {
		if err := mach.Receive(ctx, port, &in); err != nil {
			return err
		}
		switch in.ID {
		case idQuit:
			return nil
		case idEcho:
		default:
			in.Destroy()
			continue
		}
		reply := &mach.Message{ID: in.ID, Body: append([]byte(nil), in.Body...)}
		for _, d := range in.Descriptors {
			if o, ok := d.(*mach.OOLDescriptor); ok {
				sum := sha256.Sum256(o.Data)
				reply.Body = binary.LittleEndian.AppendUint32(append(reply.Body[:0], sum[:]...), o.Size)
			}
		}
		r := in.TakeRemote()
		so, ok := r.(*mach.SendOnceRight)
		if !ok {
			in.Destroy()
			continue
		}
		reply.Remote = mach.MoveSendOnceOf(so)
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := mach.Send(ctx, reply)
		cancel()
		in.Destroy()
		if err != nil {
			so.Close()
			return err
		}
	}
}

// pong answers every message at once, for benchmarks: through the reply right if the message has
// one, else to the parent's port; the incoming message's rights and memory are released. Message
// buffers are reused, as a latency-sensitive server would.
func pong(ctx context.Context, port *mach.ReceiveRight, parent *mach.SendRight) error {
	var in, out mach.Message
	for {
		if err := mach.Receive(ctx, port, &in); err != nil {
			return err
		}
		if in.ID == idQuit {
			return nil
		}
		out.ID, out.Body, out.Local = in.ID, in.Body, mach.Port{}
		out.Remote = mach.CopySendOf(parent)
		var so *mach.SendOnceRight
		if r := in.TakeRemote(); r != nil {
			so = r.(*mach.SendOnceRight)
			out.Remote = mach.MoveSendOnceOf(so)
		}
		err := mach.Send(ctx, &out)
		in.Destroy()
		if err != nil {
			return err
		}
	}
}

// keep holds the reply rights of idEcho requests until idStop, then reports how many it holds
// and receives nothing more, until killed.
func keep(ctx context.Context, port *mach.ReceiveRight, parent *mach.SendRight) error {
	var kept []mach.Right
	for {
		var in mach.Message
		if err := mach.Receive(ctx, port, &in); err != nil {
			return err
		}
		if in.ID == idStop {
			break
		}
		kept = append(kept, in.TakeRemote())
	}
	if err := mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(parent), ID: idKept, Body: []byte{byte(len(kept))}}); err != nil {
		return err
	}
	select {}
}

// forward sends each message on to the send right it carries, with the same id and its reply
// right (if any) as the reply right, then receives the next.
func forward(ctx context.Context, port *mach.ReceiveRight) error {
	for {
		var in mach.Message
		if err := mach.Receive(ctx, port, &in); err != nil {
			return err
		}
		to, err := in.TakePort(0)
		if err != nil {
			return fmt.Errorf("forward: message %d without a destination", in.ID)
		}
		dest := to.(*mach.SendRight)
		out := &mach.Message{Remote: mach.CopySendOf(dest), ID: in.ID}
		if so, ok := in.TakeRemote().(*mach.SendOnceRight); ok {
			out.Local = mach.MoveSendOnceOf(so)
		}
		err = mach.Send(ctx, out)
		dest.Close()
		if err != nil {
			return err
		}
	}
}
