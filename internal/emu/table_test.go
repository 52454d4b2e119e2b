//go:build linux

package emu

import (
	"os"
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
