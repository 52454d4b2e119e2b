package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/machport/machport/internal/testproc"
)

// notify watch --json reports each delivery with the state read then; notify state sets and
// reads it; notify post posts; -n ends the watch.
func TestNotifyWatchStatePostJSON(t *testing.T) {
	name := uniqueName(t)
	cmd := exec.Command(machping, "--json", "notify", "watch", "-n", "1", name)
	c := testproc.StartCommand(t, cmd, "", "")
	var ev notifyEvent
	line := c.Line(t)
	require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
	require.Equal(t, "watching", ev.Event)
	require.Equal(t, name, ev.Name)

	r := runMachping(t, nil, "--json", "notify", "state", name, "7")
	requireCode(t, r, exitOK)
	doc := decode[notifyDoc](t, r)
	require.Equal(t, "state", doc.Action)
	require.NotNil(t, doc.State)
	require.Equal(t, uint64(7), *doc.State)
	r = runMachping(t, nil, "notify", "state", name)
	requireCode(t, r, exitOK)
	require.Equal(t, name+" 7\n", r.stdout)

	r = runMachping(t, nil, "--json", "notify", "post", name)
	requireCode(t, r, exitOK)
	require.Equal(t, "post", decode[notifyDoc](t, r).Action)

	line = c.Line(t)
	ev = notifyEvent{}
	require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
	require.Equal(t, "delivery", ev.Event)
	require.Equal(t, name, ev.Name)
	require.Equal(t, uint64(7), ev.State)
	require.NotZero(t, ev.Token)
	require.WithinDuration(t, time.Now(), ev.Time, time.Minute)
	require.NoError(t, cmd.Wait(), "-n 1 ends the watch with status 0")
}

// notify watch prints one timestamped line per delivery and ends with status 0 on Ctrl-C.
func TestNotifyWatchTextAndInterrupt(t *testing.T) {
	name := uniqueName(t)
	cmd := exec.Command(machping, "notify", "watch", name)
	cmd.Env = os.Environ()
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer cmd.Process.Kill()
	errLine, err := bufio.NewReader(stderr).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "watching "+name+" (Ctrl-C ends)\n", errLine)

	requireCode(t, runMachping(t, nil, "notify", "post", name), exitOK)
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	require.NoError(t, err)
	require.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z `+regexp.QuoteMeta(name)+` state=0\n$`, line)

	require.NoError(t, cmd.Process.Signal(syscall.SIGINT))
	require.NoError(t, cmd.Wait(), "Ctrl-C ends the watch with status 0")
}

// Bad usage is status 2 with a hint.
func TestNotifyUsage(t *testing.T) {
	for _, args := range [][]string{
		{"notify"}, {"notify", "post"}, {"notify", "shout", "x"}, {"notify", "state", "x", "minus-one"},
		{"notify", "watch", "-n", "-1", "x"},
	} {
		r := runMachping(t, nil, args...)
		requireCode(t, r, exitError)
		require.True(t, strings.Contains(r.stderr, "'machping help notify' shows the usage"), r.stderr)
	}
}
