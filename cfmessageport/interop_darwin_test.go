//go:build darwin && !ios

// Interop with CoreFoundation's own CFMessagePort (bound with purego in internal/cfport), in both
// directions and across processes: a Go client of a CF server, a CF client of a Go server,
// inline and out-of-line payloads, one-way messages, per-process names, a peer's death and the
// sandbox's refusal. They run on macOS runners only; here they are compiled for darwin.

package cfmessageport_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/cfport"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/stretchr/testify/require"
)

// msgRecord is counted by the CF echo service, whose handler cannot tell a one-way message.
const msgRecord = 5

// interopGroup is the application group of the sandboxed child.
const interopGroup = "group.com.machport.test"

// interopProfile allows everything except registering names outside interopGroup.
var interopProfile = fmt.Sprintf(`(version 1)
(allow default)
(deny mach-register)
(allow mach-register (global-name-prefix "%s."))
`, interopGroup)

func init() {
	extraRoles["cfserve"] = func(name string) error { return runCFServer(name, nil) }
	extraRoles["cfservepid"] = func(name string) error { return runCFServer(name, &cfport.Options{PerPID: true}) }
	extraRoles["cfdenied"] = runDeniedChild
}

// cfEcho is the CF service's handler: the echo service's message ids, answered by CoreFoundation.
func cfEcho() cfport.Handler {
	var recorded atomic.Int64
	return func(msgid int32, data []byte) []byte {
		switch msgid {
		case msgSleep:
			ms, _ := strconv.Atoi(string(data))
			time.Sleep(time.Duration(ms) * time.Millisecond)
			return []byte("slept")
		case msgNone:
			return nil
		case msgRecord:
			recorded.Add(1)
			return nil
		case msgCount:
			return []byte(strconv.FormatInt(recorded.Load(), 10))
		}
		return data
	}
}

func runCFServer(name string, opts *cfport.Options) error {
	local, err := cfport.CreateLocal(name, cfEcho(), opts)
	if err != nil {
		return err
	}
	defer local.Close()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// runDeniedChild runs in a sandbox that allows registering only inside interopGroup. name is
// inside the group; the same name without the group must be refused to CF and to Go alike.
func runDeniedChild(name string) error {
	outside := "com.machport.outside." + strconv.Itoa(os.Getpid())
	if _, err := cfport.CreateLocal(outside, cfEcho(), nil); err != nil {
		fmt.Println("cf: refused")
	} else {
		fmt.Println("cf: created")
	}
	if _, err := cfmessageport.Listen(outside, echo, nil); err != nil {
		fmt.Printf("go: %v\n", bootstrapCode(err))
	} else {
		fmt.Println("go: listening")
	}
	return runCFServer(name, nil)
}

func bootstrapCode(err error) string {
	var be *bootstrap.Error
	if !errors.As(err, &be) {
		return "not a bootstrap error: " + err.Error()
	}
	return fmt.Sprintf("code %d", int32(be.Code))
}

var interopSizes = []int{0, 1, 64, 4000, 4001, 64 << 10, 1 << 20}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + n)
	}
	return b
}

// A Go client talks to CoreFoundation's server: every size comes back intact, "no data" comes
// back empty, one-way messages arrive in order before a later request, and nothing leaks.
func TestInteropGoClientCFServer(t *testing.T) {
	for _, perPID := range []bool{false, true} {
		t.Run(fmt.Sprintf("perPID=%v", perPID), func(t *testing.T) {
			leakcheck.Check(t)
			ctx := ctxTimeout(t, 30*time.Second)
			name := uniqueName(t)
			var r *cfmessageport.Remote
			if perPID {
				c := startChild(t, "cfservepid", name)
				var err error
				r, err = cfmessageport.DialPID(ctx, name, c.Cmd.Process.Pid)
				require.NoError(t, err)
				t.Cleanup(func() { r.Close() })
			} else {
				startChild(t, "cfserve", name)
				r = dial(t, ctx, name)
			}
			for _, n := range interopSizes {
				data := payload(n)
				got, err := r.Request(ctx, msgEcho, data)
				require.NoError(t, err, "%d bytes", n)
				require.True(t, bytes.Equal(data, got), "%d bytes come back changed", n)
			}
			got, err := r.Request(ctx, msgNone, []byte("x"))
			require.NoError(t, err)
			require.Empty(t, got)
			for range 3 {
				require.NoError(t, r.Send(ctx, msgRecord, []byte("one way")))
			}
			got, err = r.Request(ctx, msgCount, nil)
			require.NoError(t, err)
			require.Equal(t, "3", string(got), "the one-way messages reached CF's handler")
		})
	}
}

// CoreFoundation's client talks to a Go server: every size, CF's "no data" request, a reply with
// no data, one-way messages the Go handler sees as OneWay, and per-process names.
func TestInteropCFClientGoServer(t *testing.T) {
	for _, perPID := range []bool{false, true} {
		t.Run(fmt.Sprintf("perPID=%v", perPID), func(t *testing.T) {
			name := uniqueName(t)
			opts := &cfport.Options{}
			if perPID {
				c := startChild(t, "servepid", name)
				opts = &cfport.Options{PerPID: true, PID: c.Cmd.Process.Pid}
			} else {
				startChild(t, "serve", name)
			}
			remote, err := cfport.CreateRemote(name, opts)
			require.NoError(t, err)
			defer remote.Close()
			for _, n := range interopSizes {
				data := payload(n)
				got, status := remote.Request(msgEcho, data, 10*time.Second)
				require.Equal(t, cfport.Success, status, "%d bytes", n)
				require.True(t, bytes.Equal(data, got), "%d bytes come back changed", n)
			}
			got, status := remote.Request(msgEcho, nil, 10*time.Second)
			require.Equal(t, cfport.Success, status, "CF's no-data request")
			require.Empty(t, got)
			got, status = remote.Request(msgNone, []byte("x"), 10*time.Second)
			require.Equal(t, cfport.Success, status)
			require.Empty(t, got)
			for range 3 {
				require.Equal(t, cfport.Success, remote.Send(msgEcho, []byte("one way"), 10*time.Second))
			}
			got, status = remote.Request(msgCount, nil, 10*time.Second)
			require.Equal(t, cfport.Success, status)
			require.Equal(t, "3", string(got), "the Go handler saw three one-way messages")
		})
	}
}

// CoreFoundation's server is killed while a Go request waits: the request fails with
// ErrBecameInvalid at once, although its timeout is 30 s.
func TestInteropCFServerKilled(t *testing.T) {
	leakcheck.Check(t)
	name := uniqueName(t)
	c := startChild(t, "cfserve", name)
	ctx := ctxTimeout(t, 30*time.Second)
	r := dial(t, ctx, name)
	killMidRequest(t, c, func() error { _, err := r.Request(ctx, msgSleep, []byte("20000")); return err })
}

// A Go server is killed while CoreFoundation's client waits: CF returns
// kCFMessagePortBecameInvalidError (-5), long before its 30 s timeout.
func TestInteropGoServerKilledUnderCFClient(t *testing.T) {
	name := uniqueName(t)
	c := startChild(t, "serve", name)
	remote, err := cfport.CreateRemote(name, nil)
	require.NoError(t, err)
	defer remote.Close()
	type result struct {
		status cfport.Status
		took   time.Duration
	}
	done := make(chan result, 1)
	var killed atomic.Int64
	go func() {
		_, status := remote.Request(msgSleep, []byte("20000"), 30*time.Second)
		done <- result{status, time.Since(time.Unix(0, killed.Load()))}
	}()
	time.Sleep(200 * time.Millisecond)
	killed.Store(time.Now().UnixNano())
	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
	select {
	case r := <-done:
		require.Equal(t, cfport.BecameInvalid, r.status)
		require.Less(t, r.took, 5*time.Second)
	case <-time.After(15 * time.Second):
		t.Fatal("CF's request still waits 15 s after the Go server was killed")
	}
	require.False(t, remote.IsValid())
}

// In a sandbox that allows registering only inside an application group, CoreFoundation and Go
// are both refused a name outside it (BOOTSTRAP_NOT_PRIVILEGED, 1100), and both serve a
// prefixed name, which a Go client then reaches.
func TestInteropNameDenied(t *testing.T) {
	if _, err := exec.LookPath("sandbox-exec"); err != nil {
		t.Fatalf("sandbox-exec: %v", err)
	}
	name := interopGroup + "." + uniqueName(t)
	c := testproc.StartCommand(t, exec.Command("sandbox-exec", "-p", interopProfile, os.Args[0], "-test.run=^$"), "cfdenied", name)
	require.Equal(t, "cf: refused", c.Line(t))
	require.Equal(t, "go: code 1100", c.Line(t))
	require.Equal(t, "ready", c.Line(t))
	ctx := ctxTimeout(t, 10*time.Second)
	r := dial(t, ctx, name)
	got, err := r.Request(ctx, msgEcho, []byte("inside the group"))
	require.NoError(t, err)
	require.Equal(t, "inside the group", string(got))
}
