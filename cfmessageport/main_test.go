package cfmessageport_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

const (
	roleEnv = "MACHPORT_CFMP_TEST_ROLE"
	nameEnv = "MACHPORT_CFMP_TEST_NAME"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(roleEnv); role != "" {
		if err := runChild(role, os.Getenv(nameEnv)); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	if runtime.GOOS == "linux" && os.Getenv("MACHPORT_BOOTSTRAP_DIR") == "" {
		dir, err := os.MkdirTemp("", "machport-cfmp-test-")
		if err != nil {
			panic(err)
		}
		os.Setenv("MACHPORT_BOOTSTRAP_DIR", dir)
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// Message ids the echo handler understands.
const (
	msgEcho  = 1 // reply with the data
	msgSleep = 2 // sleep for the number of milliseconds in the data, then reply
	msgNone  = 3 // reply with no data
)

// echo is the test service's handler.
var echo = cfmessageport.HandlerFunc(func(_ context.Context, req *cfmessageport.Request) ([]byte, error) {
	switch req.MsgID {
	case msgSleep:
		var ms int
		fmt.Sscan(string(req.Data), &ms)
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return []byte("slept"), nil
	case msgNone:
		return nil, nil
	}
	return req.Data, nil // valid until the reply is sent
})

func runChild(role, name string) error {
	switch role {
	case "serve", "serveconc":
		var opts *cfmessageport.ServerOptions
		if role == "serveconc" {
			opts = &cfmessageport.ServerOptions{Concurrency: 8}
		}
		srv, err := cfmessageport.Listen(name, echo, opts)
		if err != nil {
			return err
		}
		defer srv.Close()
		fmt.Println("ready")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return nil
	case "rawserve":
		// A raw mach echo service, the benchmarks' baseline: the same message shapes as CF's
		// (inline up to 4000 bytes, out-of-line above) without the protocol.
		port, err := mach.NewPort(mach.PortOptions{})
		if err != nil {
			return err
		}
		reg, err := bootstrap.Register(name, port, bootstrap.Options{})
		if err != nil {
			return err
		}
		defer reg.Close()
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
		fmt.Println("ready")
		var m mach.Message
		for {
			if err := mach.Receive(context.Background(), reg.Port(), &m); err != nil {
				return err
			}
			reply, _ := m.TakeRemote().(*mach.SendOnceRight)
			out := &mach.Message{Remote: mach.MoveSendOnceOf(reply), ID: m.ID}
			if len(m.Descriptors) == 1 {
				if d, ok := m.Descriptors[0].(*mach.OOLDescriptor); ok {
					out.Descriptors = []mach.Descriptor{&mach.OOLDescriptor{Data: d.Data, Copy: mach.VirtualCopy}}
				}
			} else {
				out.Body = m.Body
			}
			if reply != nil && mach.Send(context.Background(), out) != nil {
				reply.Close()
			}
			_ = m.Destroy()
		}
	}
	return fmt.Errorf("unknown role %q", role)
}

type child struct {
	cmd *exec.Cmd
	out *bufio.Reader
}

func startChild(t testing.TB, role, name string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), roleEnv+"="+role, nameEnv+"="+name)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	c := &child{cmd: cmd, out: bufio.NewReader(stdout)}
	line, err := c.out.ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "ready", strings.TrimSpace(line))
	return c
}

var nameSeq atomic.Int64

func uniqueName(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("com.machport.cfmp.%s.%d.%d", strings.ReplaceAll(t.Name(), "/", "."), os.Getpid(), nameSeq.Add(1))
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
