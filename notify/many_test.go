package notify_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/notify"
)

// 16 watchers in 4 processes and a poster that sets the state to i before post i: every watcher
// accounts for every post (a delivery, a delivery merged into a waiting one, or, where the
// platform shows it, a message the full port's queue refused, for which a queued message
// stands), its deliveries read the state in order, and its last delivery read the last state.
func TestSixteenWatchersInFourProcesses(t *testing.T) {
	const procs, perProc, posts = 4, 4, 2000
	name := uniqueName(t)
	var children []*testproc.Child
	for range procs {
		c := testproc.Start(t, "watch", name, "WATCHERS="+strconv.Itoa(perProc))
		require.True(t, strings.HasPrefix(c.Line(t), "ready"))
		children = append(children, c)
	}
	reg, err := notify.RegisterCheck(name)
	require.NoError(t, err)
	defer reg.Cancel()
	givenBefore := givenUp() // another test's stuck agent may have cost this process posts
	for i := uint64(1); i <= posts; i++ {
		require.NoError(t, reg.SetState(i))
		require.NoError(t, notify.Post(name))
	}
	var delivered, merged, dropped uint64
	for _, c := range children {
		fmt.Fprintf(c.Stdin, "final %d\n", posts)
	}
	for p, c := range children {
		for w := range perProc {
			f := strings.Fields(c.Line(t))
			require.Len(t, f, 7, "process %d watcher %d", p, w)
			d, _ := strconv.ParseUint(f[0], 10, 64)
			m, _ := strconv.ParseUint(f[1], 10, 64)
			q, _ := strconv.ParseUint(f[5], 10, 64)
			s, _ := strconv.ParseUint(f[6], 10, 64)
			require.Equal(t, "true", f[3], "process %d watcher %d read the states out of order", p, w)
			require.Equal(t, strconv.Itoa(posts), f[4], "process %d watcher %d: the last delivery read the last state", p, w)
			require.NotZero(t, d)
			require.LessOrEqual(t, d, uint64(posts))
			require.Zero(t, s, "no post was given up")
			if exactAccount {
				require.Equal(t, uint64(posts), d+m+q, "process %d watcher %d: delivered + merged + dropped (posts given up: %d)", p, w, givenUp()-givenBefore)
			} else {
				require.LessOrEqual(t, d+m, uint64(posts), "process %d watcher %d: delivered + merged", p, w)
			}
			delivered, merged, dropped = delivered+d, merged+m, dropped+q
		}
	}
	require.Zero(t, givenUp()-givenBefore, "no post was given up on a child's full socket")
	t.Logf("%d watchers, %d posts each: %d delivered, %d merged into a waiting delivery, %d dropped at a full queue",
		procs*perProc, posts, delivered, merged, dropped)
}
