package appgroup_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/examples/appgroup"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

// The application group of the tests' app and extension, and the environment that gives a child
// its groups (empty: the child is not sandboxed).
const (
	group     = "group.com.machport.appgroup"
	groupsEnv = "APPGROUP_TEST_GROUPS"
)

func TestMain(m *testing.M) {
	testproc.Main(m, map[string]func(string) error{"serve": serveChild})
}

// serveChild is the process that serves name, as an app (or extension) would: it declares its
// groups when it has any, serves, says "ready" (or "refused: " and the error), and serves until
// its stdin closes.
func serveChild(name string) error {
	if groups := os.Getenv(groupsEnv); groups != "" {
		if err := appgroup.SetGroups(groups); err != nil {
			return err
		}
	}
	srv, err := appgroup.Serve(name, pidEcho{})
	if err != nil {
		fmt.Println("refused:", err)
		return nil
	}
	defer srv.Close()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// msgFail makes pidEcho fail, which the caller sees as an empty reply.
const msgFail = 2

// pidEcho replies "<its pid>:<the data>", so that the caller can tell which process answered.
type pidEcho struct{}

func (pidEcho) Handle(msgid int32, data []byte) ([]byte, error) {
	if msgid == msgFail {
		return nil, errors.New("the handler failed")
	}
	return fmt.Appendf(nil, "%d:%s", os.Getpid(), data), nil
}

// enterGroup puts the test process (the extension) in the emulated sandbox with the tests' group,
// until the test ends.
func enterGroup(t *testing.T) {
	t.Helper()
	require.NoError(t, appgroup.SetGroups(" "+group+" "))
	t.Cleanup(sandboxcheck.ResetApplicationGroups)
}

// startServer starts a child serving name with the groups given, and requires it to be ready.
func startServer(t *testing.T, name, groups string) *testproc.Child {
	t.Helper()
	c := testproc.Start(t, "serve", name, groupsEnv+"="+groups)
	line := c.Line(t)
	require.Equal(t, "ready", line)
	return c
}

// The app (a child process in the group) serves a name in the group and the extension (this
// process, in the group too) calls it; the reply comes from the app's process. Names outside
// the group are refused with 1100 on both sides, and the errors say why.
func TestServeCall(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, name string)
	}{
		{"in the group", func(t *testing.T, name string) {
			c := startServer(t, name, group)
			enterGroup(t)
			reply, err := appgroup.Call(name, 1, []byte("from the extension"), 0)
			require.NoError(t, err)
			require.Equal(t, strconv.Itoa(c.Cmd.Process.Pid)+":from the extension", string(reply))
		}},
		{"the handler fails", func(t *testing.T, name string) {
			startServer(t, name, group)
			enterGroup(t)
			reply, err := appgroup.Call(name, msgFail, []byte("x"), 0)
			require.NoError(t, err)
			require.Empty(t, reply)
		}},
		{"serving outside the group", func(t *testing.T, _ string) {
			c := testproc.Start(t, "serve", "com.machport.appgroup.outside."+strconv.Itoa(os.Getpid()), groupsEnv+"="+group)
			line := c.Line(t)
			require.True(t, strings.HasPrefix(line, "refused: "), line)
			// The refusal names the code and the rule, and suggests a name inside the group.
			require.Contains(t, line, "1100")
			require.Contains(t, line, "outside the application groups ["+group+"]")
			require.Contains(t, line, `use e.g. "`+group+".")
		}},
		{"calling outside the group", func(t *testing.T, _ string) {
			// Served by a process outside the sandbox, so that only the caller's sandbox refuses.
			outside := testproc.UniqueName(t, "com.machport.appgroup")
			startServer(t, outside, "")
			enterGroup(t)
			_, err := appgroup.Call(outside, 1, []byte("x"), 0)
			require.ErrorIs(t, err, bootstrap.ErrNotPrivileged)
			require.ErrorIs(t, err, sandboxcheck.ErrOutsideGroups)
			require.Contains(t, err.Error(), "1100")
			require.Equal(t, 1100, appgroup.ErrorCode(err))
		}},
		{"nobody serves", func(t *testing.T, name string) {
			enterGroup(t)
			_, err := appgroup.Call(name, 1, []byte("x"), 0)
			require.ErrorIs(t, err, bootstrap.ErrUnknownService)
			require.Equal(t, 1102, appgroup.ErrorCode(err))
		}},
		{"the server closed", func(t *testing.T, name string) {
			enterGroup(t)
			srv, err := appgroup.Serve(name, pidEcho{})
			require.NoError(t, err)
			require.Equal(t, name, srv.Name())
			reply, err := appgroup.Call(name, 1, []byte("in process"), 0)
			require.NoError(t, err)
			require.Equal(t, strconv.Itoa(os.Getpid())+":in process", string(reply))
			require.NoError(t, srv.Close())
			require.NoError(t, srv.Close())
			require.NoError(t, new(appgroup.Server).Close()) // Swift's AppgroupServer()
			_, err = appgroup.Call(name, 1, []byte("x"), 0)
			require.ErrorIs(t, err, bootstrap.ErrUnknownService)
		}},
		{"the server killed", func(t *testing.T, name string) {
			c := startServer(t, name, group)
			enterGroup(t)
			// No request is running here: the kill comes first, and the look-up or the request
			// (whichever meets the dead server) fails at once instead of timing out.
			require.NoError(t, c.Cmd.Process.Kill())
			_, _ = c.Cmd.Process.Wait()
			_, err := appgroup.Call(name, 1, []byte("x"), 0)
			require.True(t, errors.Is(err, bootstrap.ErrUnknownService) || errors.Is(err, cfmessageport.ErrBecameInvalid), "%v", err)
			require.Contains(t, []int{1102, -5}, appgroup.ErrorCode(err))
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			tc.run(t, group+"."+testproc.UniqueName(t, "echo"))
		})
	}
}

// Name builds group.service and checks it offline; a bad group or an empty service is refused
// with sandboxcheck's explanation. SetGroups needs a group.
func TestNameAndSetGroups(t *testing.T) {
	name, err := appgroup.Name(group, "echo")
	require.NoError(t, err)
	require.Equal(t, group+".echo", name)

	bad := []struct{ group, service string }{
		{"", "echo"},
		{group, ""},
		{group, strings.Repeat("x", sandboxcheck.MaxNameLen)},
	}
	for _, b := range bad {
		_, err := appgroup.Name(b.group, b.service)
		var ne *sandboxcheck.NameError
		require.ErrorAs(t, err, &ne, "%q %q", b.group, b.service)
	}

	require.Error(t, appgroup.SetGroups(" , "))
	_, err = appgroup.Serve(name, nil)
	require.Error(t, err)
}

// keeper keeps every request's data, as a Swift handler may keep the Data it was given.
type keeper struct{ kept chan []byte }

func (k keeper) Handle(_ int32, data []byte) ([]byte, error) {
	k.kept <- data
	return nil, nil
}

// The data a handler receives is its own: later requests do not overwrite what it kept (the
// library reuses its receive buffer, and gomobile passes a []byte to Swift without a copy).
func TestHandlerKeepsData(t *testing.T) {
	leakcheck.Check(t)
	name := group + "." + testproc.UniqueName(t, "keep")
	k := keeper{kept: make(chan []byte, 3)}
	srv, err := appgroup.Serve(name, k)
	require.NoError(t, err)
	defer srv.Close()
	for _, b := range []string{"a", "b", "c"} {
		_, err := appgroup.Call(name, 1, bytes.Repeat([]byte(b), 100), 0)
		require.NoError(t, err)
	}
	for _, b := range []string{"a", "b", "c"} {
		require.Equal(t, strings.Repeat(b, 100), string(<-k.kept))
	}
}

// ErrorCode finds launchd's code or CF's status however deeply it is wrapped, and tells nil and
// other errors apart from both.
func TestErrorCode(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, appgroup.CodeNone},
		{errors.New("something else"), appgroup.CodeOther},
		{fmt.Errorf("appgroup: %w", &cfmessageport.Error{Op: "dial", Name: "n",
			Err: &bootstrap.Error{Op: "bootstrap_register2", Name: "n", Code: bootstrap.ErrNotPrivileged}}), 1100},
		{fmt.Errorf("appgroup: %w", &cfmessageport.Error{Op: "request", Name: "n", Status: cfmessageport.ErrReceiveTimeout}), -2},
		{fmt.Errorf("appgroup: %w", &cfmessageport.Error{Op: "request", Name: "n", Status: cfmessageport.ErrBecameInvalid}), -5},
		{&bootstrap.Error{Op: "bootstrap_look_up", Name: "n", Err: errors.New("no code")}, appgroup.CodeOther},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, appgroup.ErrorCode(tc.err), "%v", tc.err)
	}
}
