package bootstrap_test

import (
	"context"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A socket squatting on a name's path answers look-ups badly: each answer gives a clear error
// and leaves no descriptor or port name behind.
func TestLookUpSurvivesHostileOwner(t *testing.T) {
	leakcheck.Check(t)
	devNull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer devNull.Close()
	cases := []struct {
		name   string
		answer func(fd int)
		check  func(t *testing.T, err error)
	}{
		{name: "garbage", answer: func(fd int) { _ = unix.Sendmsg(fd, []byte("not a hand-off"), nil, nil, 0) },
			check: func(t *testing.T, err error) { require.ErrorIs(t, err, mach.KernInvalidArgument) }},
		{name: "refusal carrying a descriptor", answer: func(fd int) {
			_ = unix.Sendmsg(fd, []byte{0x4c, 0x04, 0, 0}, unix.UnixRights(int(devNull.Fd())), nil, 0)
		}, check: func(t *testing.T, err error) { require.ErrorIs(t, err, mach.KernInvalidArgument) }},
		{name: "descriptors and garbage", answer: func(fd int) {
			_ = unix.Sendmsg(fd, make([]byte, 64), unix.UnixRights(int(devNull.Fd()), int(devNull.Fd())), nil, 0)
		}, check: func(t *testing.T, err error) { require.ErrorIs(t, err, mach.KernInvalidArgument) }},
		{name: "refusal saying success", answer: func(fd int) { _ = unix.Sendmsg(fd, []byte{0, 0, 0, 0}, nil, nil, 0) },
			check: func(t *testing.T, err error) { require.ErrorIs(t, err, mach.KernInvalidArgument) }},
		{name: "unknown code", answer: func(fd int) { _ = unix.Sendmsg(fd, []byte{0x39, 0x30, 0, 0}, nil, nil, 0) },
			check: func(t *testing.T, err error) { require.ErrorContains(t, err, "0x3039") }},
		{name: "hang-up", answer: func(int) {},
			check: func(t *testing.T, err error) { require.ErrorIs(t, err, bootstrap.ErrUnknownService) }},
		{name: "silence", answer: func(int) { time.Sleep(600 * time.Millisecond) },
			check: func(t *testing.T, err error) { require.ErrorIs(t, err, context.DeadlineExceeded) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := uniqueName(t)
			sock, _, err := bootstrap.NamePaths(name, 0)
			require.NoError(t, err)
			ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
			require.NoError(t, err)
			served := make(chan struct{})
			go func() {
				defer close(served)
				conn, err := ln.AcceptUnix()
				if err != nil {
					return
				}
				defer conn.Close()
				raw, _ := conn.SyscallConn()
				_ = raw.Control(func(fd uintptr) { tc.answer(int(fd)) })
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			s, err := bootstrap.LookUp(ctx, name)
			require.Nil(t, s)
			tc.check(t, err)
			require.Less(t, time.Since(start), time.Second)
			<-served
			ln.Close()
		})
	}
}

// A killed owner leaves the name's link and record behind; the next look-up sees the socket the
// link leads to refuse, finds the owner agent's lock free, and removes both.
func TestStaleSocketIsCleaned(t *testing.T) {
	ctx := ctxTimeout(t, 20*time.Second)
	name := uniqueName(t)
	c := startChild(t, "serve", name)
	require.Equal(t, "ready", c.Line(t))
	sock, lock, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	require.FileExists(t, sock)
	require.FileExists(t, lock)
	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
	_, _ = c.Cmd.Process.Wait()
	require.FileExists(t, sock, "a killed owner cannot clean up")

	_, err = bootstrap.LookUp(ctx, name)
	require.ErrorIs(t, err, bootstrap.ErrUnknownService)
	require.NoFileExists(t, sock)
	require.NoFileExists(t, lock)
}

// The namespace directory must be private.
func TestNamespaceDirectoryMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.Chmod(dir, 0o755))
	t.Setenv(bootstrapDirEnv, dir)
	_, err := bootstrap.Dir()
	require.ErrorContains(t, err, "others must have no access")
	_, err = bootstrap.LookUp(context.Background(), "com.machport.x")
	requireNamespaceCause(t, err, "others must have no access")
	require.NoError(t, os.Chmod(dir, 0o700))
	got, err := bootstrap.Dir()
	require.NoError(t, err)
	require.Equal(t, dir, got)
}

// A look-up that cleans a dead owner's files holds the directory's lock for a moment; a
// registration meeting it must not be told that another process serves the name.
func TestRegisterWhileALookUpCleansStaleFiles(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	for i := range 50 {
		name := uniqueName(t)
		sock, _, err := bootstrap.NamePaths(name, 0)
		require.NoError(t, err)
		ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
		require.NoError(t, err)
		ln.SetUnlinkOnClose(false)
		ln.Close() // a dead owner's socket: it refuses connections
		done := make(chan struct{})
		go func() {
			defer close(done)
			if s, err := bootstrap.LookUp(ctx, name); err == nil {
				s.Close()
			}
		}()
		port := newPort(t)
		reg, err := bootstrap.Register(name, port, &bootstrap.Options{})
		<-done
		require.NoError(t, err, "attempt %d", i)
		require.NoError(t, reg.Close())
	}
}

// A port that dies just before its registration is closed leaves no dead name behind (the
// dead-name notification's extra reference is released).
func TestPortDeathThenCloseLeavesNoDeadName(t *testing.T) {
	leakcheck.Check(t)
	for range 100 {
		port := newPort(t)
		reg, err := bootstrap.Register(uniqueName(t), port, &bootstrap.Options{})
		require.NoError(t, err)
		require.NoError(t, port.Close())
		require.NoError(t, reg.Close())
	}
}

// RegisterUnique tries another suffix when a name is taken: by this process (1103) or by
// another (1100).
func TestRegisterUniqueRetriesCollisions(t *testing.T) {
	leakcheck.Check(t)
	prefix := uniqueName(t)
	taken := register(t, prefix+".aaaa", &bootstrap.Options{})
	other := startChild(t, "serve", prefix+".cccc")
	require.Equal(t, "ready", other.Line(t))
	suffixes := []string{"aaaa", "cccc", "bbbb"}
	restore := bootstrap.SetRandomSuffix(func() string { s := suffixes[0]; suffixes = suffixes[1:]; return s })
	defer restore()
	port := newPort(t)
	reg, err := bootstrap.RegisterUnique(prefix, port, &bootstrap.Options{})
	require.NoError(t, err)
	defer reg.Close()
	require.Equal(t, prefix+".bbbb", reg.Name())
	require.NotEqual(t, taken.Name(), reg.Name())
}

const bootstrapDirEnv = bootstrap.EnvDir

// requireNamespaceCause requires that err say why the Linux namespace failed. Through the
// libSystem double the Linux namespace plays launchd, whose answer is a code alone: there the
// cause cannot reach the caller, and err must merely be an error.
func requireNamespaceCause(t *testing.T, err error, cause string) {
	t.Helper()
	require.Error(t, err)
	if !throughDouble() {
		require.ErrorContains(t, err, cause)
	}
}

// When the name's link cannot be made (here a directory squats its path), Register fails with
// the cause, releases everything it made, and the name can be registered once the path is
// clear.
func TestRegisterFailsCleanlyWhenTheSocketCannotBeMade(t *testing.T) {
	leakcheck.Check(t)
	name := uniqueName(t)
	sock, _, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(sock+"/squat", 0o700))
	port := newPort(t)
	_, err = bootstrap.Register(name, port, &bootstrap.Options{})
	var be *bootstrap.Error
	require.ErrorAs(t, err, &be)
	require.Zero(t, be.Code, "not launchd's answer")
	requireNamespaceCause(t, err, "directory not empty")
	require.NoError(t, port.Close())

	require.NoError(t, os.RemoveAll(sock))
	register(t, name, &bootstrap.Options{})
}

// An owner that dies, or withdraws, with a look-up's connection still queued on its socket
// resets it: no live server has the name (1102), not an I/O error.
func TestLookUpOfAnOwnerGoneBeforeAccepting(t *testing.T) {
	leakcheck.Check(t)
	name := uniqueName(t)
	sock, _, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	require.NoError(t, err)
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		s, err := bootstrap.LookUp(ctxTimeout(t, 20*time.Second), name)
		if err == nil {
			s.Close()
		}
		errc <- err
	}()
	// The listening socket polls readable once the look-up's connection is queued on it.
	raw, err := ln.SyscallConn()
	require.NoError(t, err)
	var n int
	var perr error
	require.NoError(t, raw.Control(func(fd uintptr) {
		n, perr = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 20_000)
	}))
	require.NoError(t, perr)
	require.Equal(t, 1, n, "the look-up connected")
	require.NoError(t, ln.Close())
	err = <-errc
	require.ErrorIs(t, err, bootstrap.ErrUnknownService)
	requireNamespaceCause(t, err, "the owner went away before answering")
}

// A send right whose server dies while the right is on its way to a look-up arrives dead
// (Mach copies it out as MACH_PORT_DEAD): no live server has the name (1102). The look-up runs
// in a child that is stopped until the right is in its socket and the server is dead.
func TestLookUpOfARightThatDiesOnTheWay(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	serverName := uniqueName(t)
	server := startChild(t, "serve", serverName)
	require.Equal(t, "ready", server.Line(t))
	right, err := bootstrap.LookUp(ctx, serverName)
	require.NoError(t, err)
	defer right.Close()

	// This process plays the owner of name, and answers the child's look-up with right.
	name := uniqueName(t)
	sock, _, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	require.NoError(t, err)
	defer ln.Close()
	looker := startChild(t, "lookup", name)
	conn, err := ln.AcceptUnix()
	require.NoError(t, err)
	defer conn.Close()
	pid := looker.Cmd.Process.Pid
	require.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	var ws syscall.WaitStatus
	_, err = syscall.Wait4(pid, &ws, syscall.WUNTRACED, nil) // until every thread has stopped
	require.NoError(t, err)
	require.True(t, ws.Stopped(), "the child stopped: %v", ws)

	raw, err := conn.SyscallConn()
	require.NoError(t, err)
	kr := int32(-1)
	require.NoError(t, raw.Control(func(fd uintptr) { kr = emu.PassSendRight(int(fd), uint32(right.Name())) }))
	require.Zero(t, kr, "the right is in the child's socket")
	require.NoError(t, server.Cmd.Process.Signal(syscall.SIGKILL))
	_ = server.Cmd.Wait()
	eventually(t, "the right is dead", func() bool {
		ty, err := mach.TypeOf(right.Name())
		return err == nil && ty.Has(mach.TypeDeadName)
	})

	require.NoError(t, syscall.Kill(pid, syscall.SIGCONT))
	line := looker.Line(t)
	require.True(t, strings.HasPrefix(line, "unknown-service=true: "), line)
	require.Contains(t, line, "dead name")
}
