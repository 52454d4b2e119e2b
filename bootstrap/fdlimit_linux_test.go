//go:build linux

package bootstrap_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
	"golang.org/x/sys/unix"
)

func init() { extraRoles["fdlimit"] = registerToFDLimit }

// registerToFDLimit lowers the process's open-file limit a little above what it has open, then
// registers names until one fails, and prints how many it registered, whether the error matches
// EMFILE, and its text. A name holds no descriptor of its own, and its port's send right may
// hold none either, so after each name the child also opens a file, as a process busy with
// other work does: the limit is reached either way.
func registerToFDLimit(name string) error {
	open, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	lim := unix.Rlimit{Cur: uint64(len(open) + 64), Max: uint64(len(open) + 64)}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	for i := 0; ; i++ {
		port, err := mach.NewPort(mach.PortOptions{})
		if err == nil {
			_, err = bootstrap.Register(fmt.Sprintf("%s.%d", name, i), port, &bootstrap.Options{})
		}
		if err != nil {
			fmt.Printf("%d %v %s\n", i, errors.Is(err, syscall.EMFILE), err)
			return nil
		}
		_, _ = os.Open(os.DevNull) // held until the child exits; at the limit it fails, and so will the next name
	}
}

// Registering names until the process runs out of descriptors fails with an error that says
// which limit it hit (RLIMIT_NOFILE, and how many descriptors a name holds: none of its own)
// and matches EMFILE.
func TestRegisterSaysWhichLimit(t *testing.T) {
	c := testproc.Start(t, "fdlimit", uniqueName(t))
	line := c.Line(t)
	t.Log(line)
	f := strings.SplitN(line, " ", 3)
	if len(f) != 3 || f[0] == "0" {
		t.Fatalf("the child says %q", line)
	}
	// Through the libSystem double the Darwin logic registers, and the namespace's cause does
	// not reach the caller (as in requireNamespaceCause): the registration must merely fail.
	if !throughDouble() && (f[1] != "true" || !strings.Contains(f[2], "RLIMIT_NOFILE") || !strings.Contains(f[2], "no descriptor of its own")) {
		t.Fatalf("the child says %q", line)
	}
}
