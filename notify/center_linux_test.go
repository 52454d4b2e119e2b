//go:build linux

package notify_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/machport/machport/internal/leakcheck"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
	"github.com/machport/machport/notify"
)

func init() {
	extraRoles["hostile"] = childHostile
}

// A registration dies with its process: the process's agent socket is left unbound, the next
// post removes it, and posting goes on for the living.
func TestRegistrationDiesWithItsProcess(t *testing.T) {
	name := uniqueName(t)
	child := testproc.Start(t, "watch", name)
	line := child.Line(t)
	path := strings.TrimPrefix(line, "ready ")
	require.NotEqual(t, line, path)
	_, err := os.Stat(path)
	require.NoError(t, err, "the child's agent socket")
	require.NoError(t, child.Cmd.Process.Kill())
	_, _ = child.Cmd.Process.Wait()

	sub, err := notify.Watch(ctxFor(t), name)
	require.NoError(t, err)
	defer sub.Cancel()
	require.NoError(t, notify.Post(name))
	_, err = os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist, "the post removed the dead process's socket")
	select {
	case <-sub.C():
	case <-ctxFor(t).Done():
		t.Fatal("the living watcher missed the post")
	}
}

// The agent's socket is where the last registration needing it leaves it: the file goes with
// the last Mach-port registration.
func TestAgentGoesWithLastPortRegistration(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	require.Empty(t, notify.AgentPath())
	reg, err := notify.RegisterPort(uniqueName(t), nil)
	require.NoError(t, err)
	path := notify.AgentPath()
	require.NotEmpty(t, path)
	require.NoError(t, reg.Cancel())
	require.Empty(t, notify.AgentPath())
	_, err = os.Stat(path)
	require.ErrorIs(t, err, os.ErrNotExist)
}

// childHostile sends the agent at name (a socket path) what a hostile process of the same user
// might: garbage, truncated and oversized datagrams, a post carrying descriptors, then one
// well-formed post of the name given by the env POST. It prints how many datagrams it sent
// that the agent must drop.
func childHostile(path string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	to := &unix.SockaddrUnix{Name: path}
	good := notify.EncodePostForTest(os.Getenv("POST"))
	pipeR, pipeW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pipeR.Close()
	defer pipeW.Close()
	rights := unix.UnixRights(int(pipeR.Fd()), int(pipeW.Fd()))
	bad := [][]byte{
		{},
		[]byte("hello"),
		good[:len(good)-1],                     // truncated name
		append(append([]byte{}, good...), 'x'), // a byte too many
		append([]byte("XXXX"), good[4:]...),    // wrong magic
		make([]byte, notify.MaxNameLen+100),    // oversized, zero-filled
	}
	for _, b := range bad {
		if err := unix.Sendmsg(fd, b, nil, to, 0); err != nil {
			return fmt.Errorf("send: %w", err)
		}
	}
	// Garbage with descriptors attached: dropped, and the descriptors closed.
	if err := unix.Sendmsg(fd, []byte("garbage with fds"), rights, to, 0); err != nil {
		return err
	}
	// A good post with descriptors: the post counts, the descriptors are closed.
	if err := unix.Sendmsg(fd, good, rights, to, 0); err != nil {
		return err
	}
	fmt.Println(len(bad) + 1)
	return nil
}

// Garbage from another process is dropped, descriptors it carries are closed, and nothing else
// is lost: the well-formed post among it is delivered, and the fd and port counts come back.
func TestHostileInputIsDropped(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	name := uniqueName(t)
	sub, err := notify.Watch(ctxFor(t), name)
	require.NoError(t, err)
	defer sub.Cancel()
	before := notify.GarbageDrops()
	child := testproc.Start(t, "hostile", notify.AgentPath(), "POST="+name)
	var dropped uint64
	_, err = fmt.Sscan(child.Line(t), &dropped)
	require.NoError(t, err)
	select {
	case d := <-sub.C():
		require.Equal(t, name, d.Name)
	case <-ctxFor(t).Done():
		t.Fatal("the well-formed post was lost")
	}
	testproc.Eventually(t, "every bad datagram dropped", 10*1e9, func() bool {
		return notify.GarbageDrops()-before >= dropped
	})
	require.Equal(t, dropped, notify.GarbageDrops()-before)
	require.NoError(t, sub.Cancel())
}

// A garbage state file (wrong size, or not a regular file) reads as zero and does not block.
func TestGarbageStateFile(t *testing.T) {
	name := uniqueName(t)
	reg, err := notify.RegisterCheck(name)
	require.NoError(t, err)
	defer reg.Cancel()
	require.NoError(t, reg.SetState(7))
	dir, err := notify.CenterDir()
	require.NoError(t, err)
	path := notify.StatePathForTest(dir, name)
	require.NoError(t, os.WriteFile(path, []byte("short"), 0o600))
	v, err := reg.State()
	require.NoError(t, err)
	require.Zero(t, v)
	require.NoError(t, os.Remove(path))
	require.NoError(t, unix.Mkfifo(path, 0o600))
	defer os.Remove(path)
	v, err = reg.State()
	require.NoError(t, err)
	require.Zero(t, v, "a FIFO is refused, not opened and waited on")
	require.Error(t, reg.SetState(1))
	require.NoError(t, notify.Post(name), "a post does not wait on it either")
	_ = filepath.Base(path)
}

// NOTIFY_REUSE's trap, as notifyd has it: registering a port notifyd did not make returns OK and
// a token, but nothing is ever delivered there. Package notify never does this (RegisterPort
// takes only its own Ports); the center does what notifyd does.
func TestReuseOfAForeignPortRegistersNothing(t *testing.T) {
	warm(t)
	leakcheck.Check(t)
	name := uniqueName(t)
	foreign, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer foreign.Close()
	tok, st := notify.RawRegisterReuse(name, uint32(foreign.Name()))
	require.Zero(t, st, "notifyd says OK")
	defer notify.RawCancel(tok)
	live, err := notify.RegisterPort(name, nil)
	require.NoError(t, err)
	defer live.Cancel()
	require.NoError(t, notify.Post(name))
	_, err = live.Port().Receive(ctxFor(t))
	require.NoError(t, err)
	status, err := foreign.Status()
	require.NoError(t, err)
	require.Zero(t, status.MessageCount, "nothing was registered on the foreign port")

	_, st = notify.RawRegisterReuse(name, 0x7777_0003)
	require.Equal(t, uint32(notify.StatusInvalidPort), st, "an invalid name is refused")
}

// Posting 10,000 times to a watched name leaves the fd and port counts where they were.
func TestTenThousandPostsLeakNothing(t *testing.T) {
	warm(t)
	name := uniqueName(t)
	sub, err := notify.Watch(ctxFor(t), name)
	require.NoError(t, err)
	defer sub.Cancel()
	require.NoError(t, notify.Post(name))
	<-sub.C()
	fds, names := leakcheck.FDs(t), leakcheck.Names(t)
	for range 10000 {
		require.NoError(t, notify.Post(name))
	}
	reg := sub.Registration
	testproc.Eventually(t, "the center handled the posts", 20*1e9, func() bool {
		return notify.Handled(reg.Token()) >= 10001
	})
	ctx, cancel := context.WithTimeout(context.Background(), 0)
	defer cancel()
	for {
		select {
		case <-sub.C():
			continue
		case <-ctx.Done():
		}
		break
	}
	// Not more (the counts are the whole process's: an earlier test's descriptors and names may
	// still be going meanwhile, and the counts fall): a leak per post would add 10,000.
	require.LessOrEqual(t, leakcheck.FDs(t), fds, "fds")
	require.LessOrEqual(t, leakcheck.Names(t), names, "port names")
}

// An agent whose process stops reading (stopped, or hostile) costs posters one wait of the send
// timeout, then its posts are dropped and counted without waiting, and once it reads again it
// gets posts again; live watchers see every post meanwhile.
func TestStuckAgentIsDroppedThenRecovers(t *testing.T) {
	name := uniqueName(t)
	sub, err := notify.Watch(ctxFor(t), name)
	require.NoError(t, err)
	defer sub.Cancel()
	dir, err := notify.CenterDir()
	require.NoError(t, err)
	path := filepath.Join(dir, "agents", "a-stuck-"+strings.ReplaceAll(t.Name(), "/", "-"))
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	require.NoError(t, unix.Bind(fd, &unix.SockaddrUnix{Name: path}))
	defer os.Remove(path)

	before := notify.SocketDrops()
	posts := 0
	for notify.SocketDrops() == before {
		require.NoError(t, notify.Post(name))
		posts++
		require.Less(t, posts, 10000, "the stuck socket never filled")
	}
	for range 5 {
		require.NoError(t, notify.Post(name))
	}
	require.Equal(t, before+6, notify.SocketDrops(), "every post after the first drop is dropped too")
	select {
	case <-sub.C():
	case <-ctxFor(t).Done():
		t.Fatal("the live watcher missed the posts")
	}

	// It reads again: the next post reaches it.
	buf := make([]byte, 64<<10)
	queued := 0
	for {
		n, _, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		if err != nil {
			break
		}
		got, ok := notify.DecodePostForTest(buf[:n])
		require.True(t, ok)
		require.Equal(t, name, got)
		queued++
	}
	require.Equal(t, posts-1, queued, "what its socket held")
	require.NoError(t, notify.Post(name))
	n, _, err := unix.Recvfrom(fd, buf, 0)
	require.NoError(t, err)
	got, ok := notify.DecodePostForTest(buf[:n])
	require.True(t, ok)
	require.Equal(t, name, got)
}

// A signal that interrupts a post waiting for room in a full agent socket must not lose the post
// without a count: SO_SNDTIMEO makes sendto fail with EINTR rather than restart, and the post
// used to ignore that error (TestSixteenWatchersInFourProcesses under load: one child's center
// handled 1999 of 2000 posts, and the poster had given up none).
func TestPostInterruptedBySignalIsNotLost(t *testing.T) {
	name := uniqueName(t)
	dir, err := notify.CenterDir()
	require.NoError(t, err)
	path := filepath.Join(dir, "agents", "a-full-"+strings.ReplaceAll(t.Name(), "/", "-"))
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fd)
	require.NoError(t, unix.Bind(fd, &unix.SockaddrUnix{Name: path}))
	defer os.Remove(path)
	// Fill it (max_dgram_qlen datagrams) without waiting.
	snd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(snd)
	for unix.Sendto(snd, notify.EncodePostForTest(name), unix.MSG_DONTWAIT, &unix.SockaddrUnix{Name: path}) == nil {
	}

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	done := make(chan struct{})
	go func() { // interrupt the post's wait, again and again, until it returns
		for {
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
				_ = unix.Tgkill(os.Getpid(), tid, unix.SIGURG)
			}
		}
	}()
	before := notify.SocketDrops()
	err = notify.Post(name)
	close(done)
	require.NoError(t, err)
	require.Equal(t, before+1, notify.SocketDrops(), "the post that found the socket full is counted, not lost")
}
