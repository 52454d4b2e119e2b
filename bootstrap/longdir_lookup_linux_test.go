//go:build linux

package bootstrap_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

func init() { extraRoles["registerhold"] = registerHold }

// registerHold registers name, says "ready" or "failed: <error>", and holds the name until
// stdin closes.
func registerHold(name string) error {
	port, err := mach.NewPort(mach.PortOptions{})
	if err != nil {
		return err
	}
	defer port.Close()
	reg, err := bootstrap.Register(name, port, nil)
	if err != nil {
		fmt.Println("failed:", strings.ReplaceAll(err.Error(), "\n", " "))
	} else {
		defer reg.Close()
		fmt.Println("ready")
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// dirOfLength makes a private directory whose path is exactly n bytes long.
func dirOfLength(t *testing.T, n int) string {
	t.Helper()
	base, err := os.MkdirTemp("/tmp", "mp")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(base) })
	pad := n - len(base) - 1
	require.Positive(t, pad, "base %s too long", base)
	dir := filepath.Join(base, strings.Repeat("d", pad))
	require.Len(t, dir, n)
	require.NoError(t, os.Mkdir(dir, 0o700))
	return dir
}

// A name registered in a namespace directory 68 bytes long can be looked up, though its link's
// path (dir/g-<32 hex>.sock, 108 bytes) is over sun_path's 107: sockets whose path is too long
// are reached through /proc/self/fd. A registered name must be one that can be looked up.
func TestRegisteredNameCanBeLookedUpInALongDirectory(t *testing.T) {
	dir := dirOfLength(t, 68)
	t.Setenv(bootstrap.EnvDir, dir)
	name := uniqueName(t)
	c := startChild(t, "registerhold", name, bootstrap.EnvDir+"="+dir)
	line := c.Line(t)
	if strings.HasPrefix(line, "failed:") {
		return // refusing the name is consistent too
	}
	require.Equal(t, "ready", line)
	s, err := bootstrap.LookUp(ctxTimeout(t, 20*time.Second), name)
	require.NoError(t, err, "the child registered the name in %s (%d bytes)", dir, len(dir))
	s.Close()
}
