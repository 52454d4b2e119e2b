//go:build linux && !race

package cfmessageport_test

import (
	"context"
	"os"
	"testing"

	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/internal/rerun"
	"github.com/stretchr/testify/require"
)

// A 64-byte Request to a server in another process makes at most 2 allocations in the
// requesting process: the reply's data, which is the caller's to keep, and at most one more
// (issue 18's Targets). The race detector's instrumentation allocates on its own, hence !race;
// Linux only, where the process's other allocations are the emulation's, which make none here.
// The count is the whole process's, so it is taken in a child of its own, as
// TestConcurrentServerAllocations's is: in the package's run, other tests' goroutines winding
// down allocate too.
func TestRequestAllocs(t *testing.T) {
	if os.Getenv(allocsAloneEnv) == "" {
		rerun.Test(t, allocsAloneEnv+"=1")
		return
	}
	ctx := context.Background()
	name := uniqueName(t)
	startChild(t, "serve", name)
	r, err := cfmessageport.Dial(ctx, name)
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	data := make([]byte, 64)
	var got []byte
	request := func() {
		if got, err = r.Request(ctx, msgEcho, data); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		request() // warm up: the pools, the lane, the reply port's fds
	}
	allocs := testing.AllocsPerRun(500, request)
	require.Equal(t, data, got)
	require.LessOrEqual(t, allocs, 2.0, "allocations per Request")
}
