//go:build linux

package cfmessageport_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

// The public-API-only path (viacf.go: Listen and Dial through CoreFoundation's public
// CFMessagePort calls, the default on iOS) runs here over the libSystem double's CoreFoundation,
// whose protocol underneath is the native implementation. These tests run the same cases through
// both paths and require the same answers.

func init() {
	extraRoles["cfapp"] = runCFApp
	extraRoles["cfext"] = runCFExt
}

// paths runs f once on the native path and once through CoreFoundation.
func paths(t *testing.T, f func(t *testing.T, viaCF bool)) {
	for _, viaCF := range []bool{false, true} {
		name := "native"
		if viaCF {
			name = "CoreFoundation"
		}
		t.Run(name, func(t *testing.T) {
			was := cfmessageport.SetViaCoreFoundation(viaCF)
			t.Cleanup(func() { cfmessageport.SetViaCoreFoundation(was) })
			f(t, viaCF)
		})
	}
}

// Requests, replies, one-way sends, deadlines and the ends of both sides: the same on both paths.
func TestPathsAnswerAlike(t *testing.T) {
	paths(t, func(t *testing.T, viaCF bool) {
		leakcheck.Check(t)
		objects := libsystemdouble.CFObjects()
		locals, remotes := libsystemdouble.MessagePortsMade()
		ctx := ctxTimeout(t, 10*time.Second)
		name := uniqueName(t)
		srv, err := cfmessageport.Listen(name, echo, nil)
		require.NoError(t, err)
		r, err := cfmessageport.Dial(ctx, name)
		require.NoError(t, err)

		got, err := r.Request(ctx, msgEcho, []byte("hello"))
		require.NoError(t, err)
		require.Equal(t, "hello", string(got))
		got, err = r.Request(ctx, msgNone, nil)
		require.NoError(t, err)
		require.Empty(t, got)
		require.NoError(t, r.RequestFunc(ctx, msgEcho, []byte("read in place"), func(b []byte) error {
			require.Equal(t, "read in place", string(b))
			return nil
		}))
		require.NoError(t, r.Send(ctx, msgEcho, []byte("one way")))

		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, err = r.Request(short, msgSleep, []byte("400"))
		cancel()
		require.ErrorIs(t, err, cfmessageport.ErrReceiveTimeout)
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)

		_, err = cfmessageport.Listen(name, echo, nil)
		require.ErrorIs(t, err, bootstrap.ErrServiceActive, "a name this process serves")
		_, err = cfmessageport.Dial(ctx, uniqueName(t))
		require.ErrorIs(t, err, bootstrap.ErrUnknownService)
		_, err = cfmessageport.Listen("com.machport.bad\x00name", echo, nil)
		var ne *sandboxcheck.NameError
		require.ErrorAs(t, err, &ne)
		_, err = cfmessageport.Listen(uniqueName(t), nil, nil)
		require.ErrorIs(t, err, cfmessageport.ErrNilHandler)

		require.NoError(t, r.Close())
		_, err = r.Request(ctx, msgEcho, nil)
		require.ErrorIs(t, err, cfmessageport.ErrInvalid)
		<-r.Invalidated()

		// The server's end: a remote dialed before finds the service gone.
		r2, err := cfmessageport.Dial(ctx, name)
		require.NoError(t, err)
		require.NoError(t, srv.Close())
		<-srv.Done()
		require.ErrorIs(t, srv.Err(), cfmessageport.ErrServerClosed)
		_, err = r2.Request(ctx, msgEcho, []byte("after the end"))
		// Before the death notification arrives the send fails (invalid destination), after it
		// the remote is invalid: which one depends on that race, on both paths.
		require.Error(t, err)
		require.True(t, errors.Is(err, cfmessageport.ErrBecameInvalid) || errors.Is(err, cfmessageport.ErrInvalid) ||
			errors.Is(err, cfmessageport.ErrTransport), "%v", err)
		require.NoError(t, r2.Close())
		_, err = cfmessageport.Dial(ctx, name)
		require.ErrorIs(t, err, bootstrap.ErrUnknownService, "the name is withdrawn")

		l2, r2n := libsystemdouble.MessagePortsMade()
		if viaCF {
			require.Equal(t, [2]int{locals + 1, remotes + 2}, [2]int{l2, r2n}, "ports CoreFoundation made")
			require.Equal(t, objects, libsystemdouble.CFObjects(), "CF objects left behind")
		} else {
			require.Equal(t, [2]int{locals, remotes}, [2]int{l2, r2n}, "the native path used CoreFoundation")
		}
	})
}

// A name another process holds is refused with 1100 on both paths (through CF: CreateLocal's
// NULL, which launchd's refusal causes).
func TestPathsRefuseAnotherProcesssName(t *testing.T) {
	paths(t, func(t *testing.T, viaCF bool) {
		name := uniqueName(t)
		child := testproc.Start(t, "serve", name)
		require.Equal(t, "ready", child.Line(t))
		_, err := cfmessageport.Listen(name, echo, nil)
		require.ErrorIs(t, err, bootstrap.ErrNotPrivileged)
		var be *bootstrap.Error
		require.ErrorAs(t, err, &be)
		require.Equal(t, bootstrap.ErrNotPrivileged, be.Code)
		// And the CF path's client talks to the native server of the other process.
		r, err := cfmessageport.Dial(ctxTimeout(t, 10*time.Second), name)
		require.NoError(t, err)
		defer r.Close()
		got, err := r.Request(ctxTimeout(t, 10*time.Second), msgEcho, []byte("across"))
		require.NoError(t, err)
		require.Equal(t, "across", string(got))
	})
}

// What the CF path cannot do says so: per-process names need CF's private calls, and the
// options that need the peer's audit token are unsupported.
func TestCoreFoundationPathLimits(t *testing.T) {
	was := cfmessageport.SetViaCoreFoundation(true)
	defer cfmessageport.SetViaCoreFoundation(was)
	ctx := ctxTimeout(t, 10*time.Second)
	_, err := cfmessageport.Listen(uniqueName(t), echo, &cfmessageport.ServerOptions{PerPID: true})
	require.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = cfmessageport.DialPID(ctx, uniqueName(t), os.Getpid())
	require.ErrorIs(t, err, errors.ErrUnsupported)
	name := uniqueName(t)
	srv, err := cfmessageport.Listen(name, echo, nil)
	require.NoError(t, err)
	defer srv.Close()
	r, err := cfmessageport.Dial(ctx, name)
	require.NoError(t, err)
	defer r.Close()
	_, _, err = r.RequestFrom(ctx, msgEcho, nil)
	require.ErrorIs(t, err, errors.ErrUnsupported)
	// Pairing registers its own ports with launchd.
	_, err = cfmessageport.ListenPair(uniqueName(t), echo, nil)
	require.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = cfmessageport.DialPair(ctx, name, echo, nil)
	require.ErrorIs(t, err, errors.ErrUnsupported)
}

// A Dial through CF that finds no service quotes the name once, and says CF's answer and the
// cause it stands for.
func TestCoreFoundationRefusalText(t *testing.T) {
	was := cfmessageport.SetViaCoreFoundation(true)
	defer cfmessageport.SetViaCoreFoundation(was)
	name := uniqueName(t)
	_, err := cfmessageport.Dial(ctxTimeout(t, 10*time.Second), name)
	require.ErrorIs(t, err, bootstrap.ErrUnknownService)
	require.Equal(t, 1, strings.Count(err.Error(), name), err.Error())
	require.Contains(t, err.Error(), "CoreFoundation refused to create the port")
}

// Closing a Remote fails the request waiting on it at once, as on the native path.
func TestCoreFoundationCloseEndsWaitingRequest(t *testing.T) {
	paths(t, func(t *testing.T, viaCF bool) {
		ctx := ctxTimeout(t, 10*time.Second)
		name := uniqueName(t)
		arrived := make(chan struct{}, 1)
		srv, err := cfmessageport.Listen(name, cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
			arrived <- struct{}{}
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
			}
			return req.Data, nil
		}), nil)
		require.NoError(t, err)
		defer srv.Close()
		r, err := cfmessageport.Dial(ctx, name)
		require.NoError(t, err)
		errs := make(chan error, 1)
		go func() {
			_, err := r.Request(ctx, 1, []byte("wait"))
			errs <- err
		}()
		<-arrived // the request was sent: it now waits for its reply
		closed := make(chan error, 1)
		go func() { closed <- r.Close() }()
		require.ErrorIs(t, <-errs, cfmessageport.ErrBecameInvalid, "it waited for its reply: CF's -5")
		require.NoError(t, <-closed)
	})
}

// The scenario the public-API-only path is for: an iOS app and its extension in one application
// group. Two processes, both on the CF path and both sandboxed with the group: the app serves a
// name inside the group and the extension calls it; a name outside the group is refused with
// 1100 and the sandboxcheck error that explains why.
func TestAppExtensionThroughCoreFoundation(t *testing.T) {
	const group = "group.com.machport.test"
	env := []string{cfmessageport.EnvViaCoreFoundation + "=1", sandboxcheck.EnvAppGroups + "=" + group}

	inside := group + "." + uniqueName(t)
	app := testproc.Start(t, "cfapp", inside, env...)
	require.Equal(t, "serving through CoreFoundation (1 local port)", app.Line(t))
	ext := testproc.Start(t, "cfext", inside, env...)
	require.Equal(t, `reply "to the app, from the extension" through CoreFoundation (1 remote)`, ext.Line(t))

	outside := uniqueName(t)
	refused := testproc.Start(t, "cfapp", outside, env...)
	line := refused.Line(t)
	require.True(t, strings.HasPrefix(line, "refused: code 1100, outside the groups: true, CoreFoundation ports: 0: "), line)
	require.Contains(t, line, "outside the application groups")
	require.Contains(t, line, group)
}

// runCFApp serves name (the app) until its stdin closes, or reports the refusal.
func runCFApp(name string) error {
	srv, err := cfmessageport.Listen(name, echo, nil)
	locals, _ := libsystemdouble.MessagePortsMade()
	if err != nil {
		var be *bootstrap.Error
		if !errors.As(err, &be) {
			return err
		}
		fmt.Printf("refused: code %d, outside the groups: %v, CoreFoundation ports: %d: %v\n", int32(be.Code),
			errors.Is(err, sandboxcheck.ErrOutsideGroups), locals, err)
		return nil
	}
	defer srv.Close()
	fmt.Printf("serving through CoreFoundation (%d local port)\n", locals)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// runCFExt calls name once (the extension).
func runCFExt(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := cfmessageport.Dial(ctx, name)
	if err != nil {
		return err
	}
	defer r.Close()
	reply, err := r.Request(ctx, msgEcho, []byte("to the app, from the extension"))
	if err != nil {
		return err
	}
	_, remotes := libsystemdouble.MessagePortsMade()
	fmt.Printf("reply %q through CoreFoundation (%d remote)\n", reply, remotes)
	return nil
}
