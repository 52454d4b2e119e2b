//go:build darwin && !ios

package cfport_test

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/machport/machport/internal/cfport"
	"github.com/stretchr/testify/require"
)

func name(t *testing.T) string {
	return fmt.Sprintf("com.machport.cfport.%d.%d", os.Getpid(), time.Now().UnixNano())
}

// CoreFoundation against itself in one process: the bindings' round trip, inline and out of
// line, one-way, no data, and the port's life cycle.
func TestLocalRemoteRoundTrip(t *testing.T) {
	n := name(t)
	oneWay := make(chan int32, 8)
	local, err := cfport.CreateLocal(n, func(msgid int32, data []byte) []byte {
		switch msgid {
		case 2:
			oneWay <- msgid
			return nil
		case 3:
			return nil
		case 4:
			panic("the handler's panic must not cross into CoreFoundation")
		}
		return data
	}, nil)
	require.NoError(t, err)
	require.True(t, local.IsValid())
	_, err = cfport.CreateLocal(n, func(int32, []byte) []byte { return nil }, nil)
	require.ErrorIs(t, err, cfport.ErrNameInProcess)

	remote, err := cfport.CreateRemote(n, nil)
	require.NoError(t, err)
	for _, size := range []int{0, 1, 64, 4000, 4001, 1 << 20} {
		data := bytes.Repeat([]byte{byte(size)}, size)
		reply, status := remote.Request(1, data, 10*time.Second)
		require.Equal(t, cfport.Success, status, "size %d", size)
		require.Equal(t, data, reply, "size %d", size)
	}
	reply, status := remote.Request(3, []byte("x"), 10*time.Second)
	require.Equal(t, cfport.Success, status)
	require.Empty(t, reply)
	reply, status = remote.Request(4, []byte("x"), 10*time.Second)
	require.Equal(t, cfport.Success, status)
	require.Empty(t, reply)
	require.Equal(t, cfport.Success, remote.Send(2, []byte("one way"), 10*time.Second))
	select {
	case <-oneWay:
	case <-time.After(10 * time.Second):
		t.Fatal("the one-way message never came")
	}

	require.NoError(t, local.Close())
	require.False(t, local.IsValid())
	_, status = remote.Request(1, []byte("x"), 2*time.Second)
	require.NotEqual(t, cfport.Success, status)
	require.NoError(t, remote.Close())
	require.NoError(t, remote.Close())
	_, status = remote.Request(1, []byte("x"), time.Second)
	require.Equal(t, cfport.IsInvalid, status)
	_, err = cfport.CreateRemote(n, nil)
	require.ErrorIs(t, err, cfport.ErrRefused, "the name is withdrawn with the port")
}
