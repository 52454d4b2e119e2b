//go:build linux

package emu

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/stretchr/testify/require"
)

// Another process of this user reads the table a process serves (here the test reads its own,
// through the socket): every name, its type and its user references, as the space holds them.
func TestTableIsServed(t *testing.T) {
	name, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	require.Equal(t, int32(abi.KERN_SUCCESS), InsertRight(name, name, abi.MACH_MSG_TYPE_MAKE_SEND))
	require.Equal(t, int32(abi.KERN_SUCCESS), ModRefs(name, abi.MACH_PORT_RIGHT_SEND, 2))
	defer func() {
		ModRefs(name, abi.MACH_PORT_RIGHT_SEND, -3)
		ModRefs(name, abi.MACH_PORT_RIGHT_RECEIVE, -1)
	}()

	got, err := ReadTable(os.Getpid())
	require.NoError(t, err)
	var found *TableEntry
	for i := range got {
		if got[i].Name == name {
			found = &got[i]
		}
	}
	require.NotNil(t, found, "%#x in %v", name, got)
	require.Equal(t, uint32(abi.MACH_PORT_TYPE_RECEIVE|abi.MACH_PORT_TYPE_SEND), found.Type&(abi.MACH_PORT_TYPE_RECEIVE|abi.MACH_PORT_TYPE_SEND))
	require.Equal(t, uint32(3), found.URefs)
	require.Equal(t, Table(), got)
}

// A process that serves no table (pid 1 here is no machport process) gives ErrNoTable.
func TestNoTable(t *testing.T) {
	_, err := ReadTable(1)
	require.ErrorIs(t, err, ErrNoTable)
}

// tableReaderEnv makes the test binary, run as another user, read the table of the pid it names
// and print what it got, instead of running the tests (see TestMain).
const tableReaderEnv = "MACHPORT_TEST_READ_TABLE_OF"

func TestMain(m *testing.M) {
	if pid := os.Getenv(tableReaderEnv); pid != "" {
		n, _ := strconv.Atoi(pid)
		_, err := ReadTable(n)
		fmt.Println(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The table is served to this process's user and root only: another user's process is refused
// (root runs this test, and runs a copy of the test binary as nobody).
func TestTableRefusesOtherUsers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a process as another user")
	}
	Table() // this process serves its table from its first name on
	name, kr := Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	require.Equal(t, int32(abi.KERN_SUCCESS), kr)
	defer ModRefs(name, abi.MACH_PORT_RIGHT_RECEIVE, -1)

	dir, err := os.MkdirTemp("", "machport-table-")
	require.NoError(t, err)
	defer os.RemoveAll(dir)
	require.NoError(t, os.Chmod(dir, 0o755))
	bin, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	reader := filepath.Join(dir, "reader")
	require.NoError(t, os.WriteFile(reader, bin, 0o755))

	cmd := exec.Command(reader)
	cmd.Env = append(os.Environ(), tableReaderEnv+"="+strconv.Itoa(os.Getpid()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, ErrTableNotPermitted.Error(), strings.TrimSpace(string(out)))

	cmd = exec.Command(reader) // as root: allowed
	cmd.Env = append(os.Environ(), tableReaderEnv+"="+strconv.Itoa(os.Getpid()))
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Equal(t, "<nil>", strings.TrimSpace(string(out)))
}
