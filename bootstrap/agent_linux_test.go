//go:build linux

package bootstrap_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/emu"
	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

func init() { extraRoles["servemany"] = serveMany }

// manyNames is how many names the servemany child serves.
const manyNames = 300

// serveMany registers manyNames names, "<name>.<i>", says "ready", and holds them until stdin
// closes.
func serveMany(name string) error {
	var regs []*bootstrap.Registration
	defer func() {
		for _, r := range regs {
			r.Close()
		}
	}()
	for i := range manyNames {
		port, err := mach.NewPort(mach.PortOptions{})
		if err != nil {
			return err
		}
		reg, err := bootstrap.Register(fmt.Sprintf("%s.%d", name, i), port, nil)
		if err != nil {
			port.Close()
			return err
		}
		regs = append(regs, reg)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// A served name costs no descriptor of its own: registering 200 names on ports that hold a
// send right already (whose channel the namespace's own send right shares) opens only what the
// process's namespace agent holds for all of them. Before the agent each name held a lock file
// and a listening socket: 400 descriptors here.
func TestFDsPerServedName(t *testing.T) {
	leakcheck.Check(t)
	const n = 200
	ports := make([]*mach.ReceiveRight, n)
	for i := range ports {
		ports[i] = newPort(t)
		s, err := ports[i].MakeSend()
		require.NoError(t, err)
		defer s.Close()
	}
	before := leakcheck.FDs(t)
	base := uniqueName(t)
	for i, port := range ports {
		reg, err := bootstrap.Register(fmt.Sprintf("%s.%d", base, i), port, nil)
		require.NoError(t, err)
		defer reg.Close()
	}
	grown := leakcheck.FDs(t) - before
	t.Logf("%d names: %d more descriptors (%.2f per name)", n, grown, float64(grown)/n)
	require.LessOrEqual(t, grown, bootstrap.AgentFDs, "descriptors for %d names", n)
}

// Another process serves many names: each can be looked up from here and is listed by
// ServedBy; once it is killed, every one of them is free (looked up: 1102; registered here:
// accepted), ServedBy lists none, and its agent's files are gone.
func TestKilledOwnerFreesEveryName(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, time.Minute)
	base := uniqueName(t)
	c := startChild(t, "servemany", base)
	require.Equal(t, "ready", c.Line(t))
	pid := c.Cmd.Process.Pid
	names := make([]string, manyNames)
	for i := range names {
		names[i] = fmt.Sprintf("%s.%d", base, i)
	}
	served, err := bootstrap.ServedBy(pid)
	require.NoError(t, err)
	require.ElementsMatch(t, names, served)
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(names); i += 8 {
				s, err := bootstrap.LookUp(ctx, names[i])
				if err == nil {
					if ty, terr := mach.TypeOf(s.Name()); terr != nil || !ty.Has(mach.TypeSend) {
						err = fmt.Errorf("not a live send right: %v %v", ty, terr)
					}
					s.Close()
				}
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	owner, known := bootstrap.Owner(names[len(names)-1], 0)
	require.True(t, known)
	require.Equal(t, pid, owner)

	require.NoError(t, c.Cmd.Process.Signal(syscall.SIGKILL))
	_, _ = c.Cmd.Process.Wait()
	served, err = bootstrap.ServedBy(pid)
	require.NoError(t, err)
	require.Empty(t, served, "a dead process serves nothing")
	_, known = bootstrap.Owner(names[0], 0)
	require.False(t, known, "a dead owner is no owner")
	for _, name := range names[:manyNames/2] {
		_, err := bootstrap.LookUp(ctx, name)
		require.ErrorIs(t, err, bootstrap.ErrUnknownService, name)
	}
	var regs []*bootstrap.Registration
	defer func() {
		for _, r := range regs {
			r.Close()
		}
	}()
	for _, name := range names {
		port := newPort(t)
		reg, err := bootstrap.Register(name, port, nil)
		if err != nil {
			port.Close()
		}
		require.NoError(t, err, name)
		regs = append(regs, reg)
	}
	dir, err := bootstrap.Dir()
	require.NoError(t, err)
	left, err := filepath.Glob(filepath.Join(dir, "agents", "a-"+strconv.Itoa(pid)+"-*"))
	require.NoError(t, err)
	require.Empty(t, left, "the dead agent's files")
}

// The agent that answers a process's look-ups reads a request from any process of the user:
// garbage, a request too long, one carrying descriptors, an empty one and one for a name the
// process does not serve are each refused with a code, leave nothing open, and the agent keeps
// serving; a peer that connects and says nothing holds up no one else.
func TestAgentRefusesBadRequests(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	name := uniqueName(t)
	register(t, name, nil)
	sock, _, err := bootstrap.NamePaths(name, 0)
	require.NoError(t, err)
	valid, err := bootstrap.LookUpRequest(name, 0)
	require.NoError(t, err)
	unserved, err := bootstrap.LookUpRequest(name+".other", 0)
	require.NoError(t, err)
	perPID, err := bootstrap.LookUpRequest(name, os.Getpid())
	require.NoError(t, err)
	devNull, err := os.Open(os.DevNull)
	require.NoError(t, err)
	defer devNull.Close()

	dial := func(t *testing.T) int {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
		require.NoError(t, err)
		require.NoError(t, unix.Connect(fd, &unix.SockaddrUnix{Name: sock}))
		return fd
	}
	silent := dial(t)
	defer unix.Close(silent)

	for _, tc := range []struct {
		name string
		body []byte
		fds  []int
		want int32
	}{
		{name: "garbage", body: []byte("GET / HTTP/1.0"), want: abi.KERN_INVALID_ARGUMENT},
		{name: "too long", body: append(append([]byte(nil), valid...), make([]byte, 4096)...), want: abi.KERN_INVALID_ARGUMENT},
		{name: "one byte too long", body: append(append([]byte(nil), valid...), '0'), want: abi.KERN_INVALID_ARGUMENT},
		{name: "cut short", body: valid[:len(valid)-1], want: abi.KERN_INVALID_ARGUMENT},
		{name: "with descriptors", body: valid, fds: []int{int(devNull.Fd()), int(devNull.Fd())}, want: abi.KERN_INVALID_ARGUMENT},
		{name: "empty", body: nil, want: abi.KERN_INVALID_ARGUMENT},
		{name: "a name not served", body: unserved, want: abi.BOOTSTRAP_UNKNOWN_SERVICE},
		{name: "the per-PID name of a global one", body: perPID, want: abi.BOOTSTRAP_UNKNOWN_SERVICE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fd := dial(t)
			defer unix.Close(fd)
			var oob []byte
			if tc.fds != nil {
				oob = unix.UnixRights(tc.fds...)
			}
			require.NoError(t, unix.Sendmsg(fd, tc.body, oob, nil, 0))
			got, code, err := emu.ReceiveHandoff(fd, true)
			require.NoError(t, err)
			require.Zero(t, got, "no right")
			require.Equal(t, tc.want, code)

			s, err := bootstrap.LookUp(ctx, name)
			require.NoError(t, err, "the agent still serves")
			require.NoError(t, s.Close())
		})
	}
}

// A name whose earlier-format entries (a listening socket of its own and a per-name lock,
// flocked by its owner) a process killed before an upgrade left behind: a look-up removes them
// and a registration replaces them; while their lock is held, the name counts as served.
func TestEarlierFormatLeftovers(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	leftovers := func(t *testing.T, name string) (sock, lock string) {
		t.Helper()
		sock, _, err := bootstrap.NamePaths(name, 0)
		require.NoError(t, err)
		lock, err = bootstrap.LegacyLockPath(name, 0)
		require.NoError(t, err)
		ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
		require.NoError(t, err)
		ln.SetUnlinkOnClose(false)
		require.NoError(t, ln.Close()) // its owner died: it refuses connections
		require.NoError(t, os.WriteFile(lock, fmt.Appendf(nil, "%s\n%d\n", name, 1<<22), 0o600))
		return sock, lock
	}

	t.Run("a look-up cleans them up", func(t *testing.T) {
		name := uniqueName(t)
		sock, lock := leftovers(t, name)
		_, err := bootstrap.LookUp(ctx, name)
		require.ErrorIs(t, err, bootstrap.ErrUnknownService)
		require.NoFileExists(t, sock)
		require.NoFileExists(t, lock)
	})
	t.Run("a registration replaces them", func(t *testing.T) {
		name := uniqueName(t)
		_, lock := leftovers(t, name)
		reg := register(t, name, nil)
		// In the leftover's place: the guard against earlier-format registrants, a link.
		st, err := os.Lstat(lock)
		require.NoError(t, err)
		require.Equal(t, os.ModeSymlink, st.Mode()&os.ModeSymlink, "the leftover lock replaced by the guard")
		s, err := bootstrap.LookUp(ctx, name)
		require.NoError(t, err)
		require.NoError(t, s.Close())
		require.NoError(t, reg.Close())
		require.NoFileExists(t, lock, "the guard goes with the name")
	})
	t.Run("a held lock is a live owner", func(t *testing.T) {
		name := uniqueName(t)
		_, lock := leftovers(t, name)
		fd, err := unix.Open(lock, unix.O_RDWR|unix.O_CLOEXEC, 0)
		require.NoError(t, err)
		require.NoError(t, unix.Flock(fd, unix.LOCK_EX))
		port := newPort(t)
		_, err = bootstrap.Register(name, port, nil)
		var be *bootstrap.Error
		require.ErrorAs(t, err, &be)
		require.Equal(t, bootstrap.ErrNotPrivileged, be.Code)
		_, err = bootstrap.LookUp(ctx, name)
		require.ErrorIs(t, err, bootstrap.ErrUnknownService)
		require.FileExists(t, lock, "a live owner's lock stays")
		require.NoError(t, unix.Close(fd)) // the owner dies
		reg, err := bootstrap.Register(name, port, nil)
		require.NoError(t, err)
		require.NoError(t, reg.Close())
	})
}

// A name served with a send right to another process's port (which the libSystem double's
// bootstrap_register2 may be given) goes when that port dies: one dead-name request on the
// agent's notification port, for both names of the right, withdraws them, and the port and its
// goroutine go with the agent.
func TestNamesOfAnotherProcesssPortGoWithIt(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxTimeout(t, 20*time.Second)
	serverName := uniqueName(t)
	server := startChild(t, "serve", serverName)
	require.Equal(t, "ready", server.Line(t))
	right, err := bootstrap.LookUp(ctx, serverName)
	require.NoError(t, err)
	defer right.Close()
	names := []string{serverName + ".a", serverName + ".b"}
	for _, name := range names {
		send, err := right.Copy()
		require.NoError(t, err)
		withdraw, err := bootstrap.PublishSendRight(name, send)
		if err != nil {
			send.Close()
		}
		require.NoError(t, err)
		defer withdraw()
	}
	for _, name := range names {
		s, err := bootstrap.LookUp(ctx, name)
		require.NoError(t, err, name)
		roundTrip(t, ctx, s, "via another name")
		require.NoError(t, s.Close())
		requireOwner(t, name, os.Getpid())
	}

	require.NoError(t, server.Cmd.Process.Signal(syscall.SIGKILL))
	_ = server.Cmd.Wait()
	for _, name := range names {
		eventually(t, name+" is withdrawn", func() bool { _, known := bootstrap.Owner(name, 0); return !known })
	}
}
