package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/internal/threadnames"
	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// machping is the binary under test, built once by TestMain.
var machping string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "machping-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	machping = filepath.Join(dir, "machping")
	build := exec.Command("go", "build", "-o", machping, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building machping:", err)
		os.Exit(1)
	}
	if runtime.GOOS == "linux" && os.Getenv(bootstrap.EnvDir) == "" {
		// A private namespace for this run and the processes it starts.
		os.Setenv(bootstrap.EnvDir, filepath.Join(dir, "namespace"))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one finished machping run.
type result struct {
	stdout, stderr string
	code           int
	pid            int
}

// runMachping runs machping with args and extra environment, and waits up to a minute.
func runMachping(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, machping, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errorsAs(err, &exit) {
		t.Fatalf("machping %v: %v", args, err)
	}
	require.NoError(t, ctx.Err(), "machping %v did not finish in a minute", args)
	return result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode(), pid: cmd.Process.Pid}
}

func errorsAs(err error, target **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*target = e
	return ok
}

// requireCode fails with the run's output when its exit code is not want.
func requireCode(t *testing.T, r result, want int) {
	t.Helper()
	require.Equal(t, want, r.code, "exit code; stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
}

// decode parses the run's stdout as one JSON document.
func decode[T any](t *testing.T, r result) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&v), "stdout: %s\nstderr: %s", r.stdout, r.stderr)
	require.False(t, dec.More(), "more than one JSON document: %s", r.stdout)
	require.Equal(t, 1, strings.Count(strings.TrimSpace(r.stdout), "\n")+1, "one line of JSON")
	return v
}

func uniqueName(t *testing.T) string { return testproc.UniqueName(t, "com.machport.machping") }

// server is a running 'machping --json serve'.
type server struct {
	child *testproc.Child
	pid   int
}

// startServer starts 'machping --json serve' with args (the last one the name) and waits until
// it serves. The server exits when the test ends.
func startServer(t *testing.T, env []string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(machping, append([]string{"--json", "serve"}, args...)...)
	c := testproc.StartCommand(t, cmd, "", "", append(env, childEnv+"=1")...)
	var ev servingEvent
	line := c.Line(t)
	require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
	require.Equal(t, "serving", ev.Event, line)
	require.Equal(t, args[len(args)-1], ev.Name)
	require.Equal(t, cmd.Process.Pid, ev.PID)
	require.Equal(t, os.Geteuid(), ev.UID)
	return &server{child: c, pid: ev.PID}
}

// event reads the server's next JSON event.
func (s *server) event(t *testing.T) map[string]any {
	t.Helper()
	var ev map[string]any
	line := s.child.Line(t)
	require.NoError(t, json.Unmarshal([]byte(line), &ev), line)
	require.EqualValues(t, 1, ev["machping"])
	require.Equal(t, "serve", ev["command"])
	return ev
}

// interrupt stops the server as Ctrl-C does and returns its last event and its exit code.
func (s *server) interrupt(t *testing.T) (map[string]any, int) {
	t.Helper()
	require.NoError(t, s.child.Cmd.Process.Signal(os.Interrupt))
	var last map[string]any
	for {
		ev := s.event(t)
		if ev["event"] == "withdrawn" {
			last = ev
			break
		}
	}
	_ = s.child.Cmd.Wait()
	return last, s.child.Cmd.ProcessState.ExitCode()
}

// normalize replaces what changes from run to run (times, pids, names, the platform) so that
// output can be compared with a golden file.
func normalize(s string, names ...string) string {
	for i, n := range names {
		s = strings.ReplaceAll(s, n, fmt.Sprintf("NAME%d", i+1))
	}
	s = strings.ReplaceAll(s, namespaceHint(), "NAMESPACE-HINT")
	s = strings.ReplaceAll(s, ipcBackend(), "IPC")
	s = strings.ReplaceAll(s, runtime.GOOS+"/"+runtime.GOARCH, "OS/ARCH")
	s = strings.ReplaceAll(s, version, "VERSION")
	s = strings.ReplaceAll(s, currentSandbox().Source, "SANDBOX-SOURCE")
	for _, r := range []struct{ re, with string }{
		{`port names held by this process: \d+ before, \d+ after`, "port names held by this process: N before, N after"},
		{`selftest\.\d+`, "selftest.PID"},
		{`\d+\.\d{3,4}`, "T"},
		{`\bpid \d+`, "pid PID"},
		{`\buid \d+`, "uid UID"},
	} {
		s = regexp.MustCompile(r.re).ReplaceAllString(s, r.with)
	}
	return s
}

// golden compares got with testdata/<file>, or rewrites it with -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	path := filepath.Join("testdata", file)
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run 'go test ./cmd/machping -update' to create it")
	require.Equal(t, string(want), got, "output differs from %s", path)
}

// The README's run command: a self-test across processes that passes.
func TestSelfTest(t *testing.T) {
	r := runMachping(t, nil)
	requireCode(t, r, exitOK)
	golden(t, "selftest.golden", normalize(r.stdout))
	require.Empty(t, r.stderr)

	r = runMachping(t, nil, "selftest", "--json")
	requireCode(t, r, exitOK)
	doc := decode[selftestDoc](t, r)
	require.True(t, doc.Passed)
	require.Nil(t, doc.Failure)
	require.True(t, doc.Withdrawn)
	require.Equal(t, runtime.GOOS, doc.OS)
	require.NotZero(t, doc.ChildPID)
	require.NotEqual(t, r.pid, doc.ChildPID, "the service runs in a child process")
	require.Len(t, doc.Pings, 2)
	require.Equal(t, 5, doc.Pings[0].Received)
	require.False(t, doc.Pings[0].OutOfLine)
	require.Equal(t, 3, doc.Pings[1].Received)
	require.True(t, doc.Pings[1].OutOfLine)
	if threadnames.PerThread == 0 { // elsewhere new threads add names of their own
		require.LessOrEqual(t, doc.PortNamesAfter, doc.PortNamesBefore)
	}
}

func TestUsageAndExitCodes(t *testing.T) {
	for _, tc := range []struct {
		args         []string
		code         int
		stdout       string // a substring of stdout
		stderr       string // a substring of stderr
		stdoutIsJSON bool
	}{
		{args: []string{"--version"}, stdout: "machping " + version},
		{args: []string{"--json", "--version"}, stdout: `"command":"version"`, stdoutIsJSON: true},
		{args: []string{"--help"}, stdout: "Examples:\n  machping\n"},
		{args: []string{"help"}, stdout: "Commands:"},
		{args: []string{"help", "ping"}, stdout: "usage: machping ping"},
		{args: []string{"ping", "--help"}, stdout: "machping ping -c 5 com.example.echo"},
		{args: []string{"serve", "-h"}, stdout: "Ctrl-C"},
		{args: []string{"help", "json"}, stdout: "loss_percent"},
		{args: []string{"bogus"}, code: exitError, stderr: `unknown command "bogus"`},
		{args: []string{"--bogus"}, code: exitError, stderr: "machping: unknown flag --bogus\n  hint: 'machping help' shows the usage\n"},
		{args: []string{"ping", "--bogus", "n"}, code: exitError, stderr: "machping: unknown flag --bogus\n  hint: 'machping help ping' shows the usage\n"},
		{args: []string{"ping", "--bogus=3", "n"}, code: exitError, stderr: "machping: unknown flag --bogus\n"},
		{args: []string{"ping", "-x1", "n"}, code: exitError, stderr: "machping: unknown flag -x1\n"},
		{args: []string{"ping", "-cx", "n"}, code: exitError, stderr: `machping: invalid value "x" for flag -c`},
		{args: []string{"-c1"}, code: exitError, stderr: "machping: unknown flag -c1\n"},
		{args: []string{"help", "bogus"}, code: exitError, stderr: `no help for "bogus"`},
		{args: []string{"ping"}, code: exitError, stderr: "ping needs exactly one NAME, got 0 arguments"},
		{args: []string{"ping", "a", "b"}, code: exitError, stderr: "got 2 arguments"},
		{args: []string{"ping", "-c", "x", "n"}, code: exitError, stderr: `invalid value "x" for flag -c`},
		{args: []string{"ping", "-W", "0", "n"}, code: exitError, stderr: "-W must be positive"},
		{args: []string{"ping", "-i", "soon", "n"}, code: exitError, stderr: "not seconds or a duration"},
		{args: []string{"ping", "-s", "-1", "n"}, code: exitError, stderr: "-s must be between"},
		{args: []string{"ping", "-i", "NaN", "n"}, code: exitError, stderr: "not a finite number of seconds"},
		{args: []string{"ping", "-i", "1e10", "n"}, code: exitError, stderr: "more than 9223372036 seconds"},
		{args: []string{"ping", "-W", "+Inf", "n"}, code: exitError, stderr: "not a finite number of seconds"},
		{args: []string{"ping", "--pid", "-4", "n"}, code: exitError, stderr: "--pid must be a process id"},
		{args: []string{"lookup", "-W", "0", "n"}, code: exitError, stderr: "-W must be positive"},
		{args: []string{"lookup", "--pid", "-4", "n"}, code: exitError, stderr: "--pid must be a process id"},
		{args: []string{"--json", "ping"}, code: exitError, stdout: `"error":{"message":"ping needs exactly one NAME`, stdoutIsJSON: true},
		{args: []string{"serve"}, code: exitError, stderr: "serve needs exactly one NAME"},
		{args: []string{"lookup"}, code: exitError, stderr: "lookup needs exactly one NAME"},
		{args: []string{"register", "a", "b"}, code: exitError, stderr: "register needs exactly one NAME"},
		{args: []string{"check"}, code: exitError, stderr: "check needs exactly one NAME"},
		{args: []string{"rights", "x"}, code: exitError, stderr: "rights takes no arguments"},
		{args: []string{"bench", "--sizes", "12,huge"}, code: exitError, stderr: `"huge" is not a size`},
		{args: []string{"bench", "--transports", "pigeon"}, code: exitError, stderr: `unknown transport "pigeon"`},
		{args: []string{"bench", "--concurrency", "0"}, code: exitError, stderr: "--concurrency must be between 1 and 256"},
		{args: []string{"bench", "--concurrency", "257"}, code: exitError, stderr: "--concurrency must be between 1 and 256"},
		{args: []string{"selftest", "x"}, code: exitError, stderr: "selftest takes no arguments"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := runMachping(t, nil, tc.args...)
			requireCode(t, r, tc.code)
			require.Contains(t, r.stdout, tc.stdout)
			require.Contains(t, r.stderr, tc.stderr)
			if tc.stdoutIsJSON {
				var v map[string]any
				require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
				require.EqualValues(t, 1, v["machping"])
			}
			if tc.code == exitError && !tc.stdoutIsJSON {
				require.Empty(t, r.stdout, "errors go to stderr")
			}
			if tc.code == exitOK {
				require.Empty(t, r.stderr, "help and answers go to stdout only")
			}
		})
	}
}

// serve and ping across processes, for both protocols and both inline and out-of-line data,
// global and per-PID.
func TestServeAndPing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		serve  []string
		ping   []string
		size   int
		perPID bool
	}{
		{name: "cf/inline", size: 56},
		{name: "cf/out-of-line", ping: []string{"-s", "10000"}, size: 10000},
		{name: "raw/inline", serve: []string{"--raw"}, ping: []string{"--raw", "-s", "7"}, size: 7},
		{name: "raw/out-of-line", serve: []string{"--raw"}, ping: []string{"--raw", "-s", "70000"}, size: 70000},
		{name: "cf/per-pid", serve: []string{"--pid"}, size: 56, perPID: true},
		{name: "raw/per-pid", serve: []string{"--raw", "--pid"}, ping: []string{"--raw"}, size: 56, perPID: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := uniqueName(t)
			srv := startServer(t, nil, append(tc.serve, name)...)
			ping := append([]string{"ping", "-c", "3", "-i", "0.01"}, tc.ping...)
			if tc.perPID {
				// Without --pid the per-PID name is unknown.
				r := runMachping(t, nil, append(slicesClone(ping), "-W", "1", name)...)
				requireCode(t, r, exitUnknown)
				require.Contains(t, r.stderr, "unknown service (1102)")
				ping = append(ping, "--pid", strconv.Itoa(srv.pid))
			}
			// Flags after the name work too.
			r := runMachping(t, nil, append(ping, name, "--json")...)
			requireCode(t, r, exitOK)
			doc := decode[pingDoc](t, r)
			require.Equal(t, name, doc.Name)
			require.Equal(t, 3, doc.Transmitted)
			require.Equal(t, 3, doc.Received)
			require.Zero(t, doc.LossPercent)
			require.Equal(t, tc.size, doc.Size)
			require.Equal(t, tc.size > 4000, doc.OutOfLine)
			require.Len(t, doc.Replies, 3)
			for i, reply := range doc.Replies {
				require.Equal(t, i+1, reply.Seq)
				require.Equal(t, &sender{PID: srv.pid, UID: uint32(os.Geteuid())}, reply.From, "the reply's audit trailer")
				require.Equal(t, tc.size, reply.Bytes)
				require.Positive(t, reply.TimeMs)
				require.Empty(t, reply.Error)
			}
			require.Equal(t, 3, doc.RTT.Count)
			require.LessOrEqual(t, doc.RTT.Min, doc.RTT.P50)
			require.LessOrEqual(t, doc.RTT.P50, doc.RTT.P99)
			require.LessOrEqual(t, doc.RTT.P99, doc.RTT.Max)
			if tc.perPID {
				require.Equal(t, srv.pid, doc.PID)
			}

			// The server logged each request with the pinger's pid and uid.
			for seq := 1; seq <= 3; seq++ {
				ev := srv.event(t)
				require.Equal(t, "request", ev["event"])
				require.EqualValues(t, r.pid, ev["pid"])
				require.EqualValues(t, os.Geteuid(), ev["uid"])
				require.EqualValues(t, seq, ev["msgid"])
				require.Equal(t, tc.size > 4000, ev["out_of_line"])
				require.Equal(t, false, ev["one_way"])
			}

			last, code := srv.interrupt(t)
			require.Equal(t, exitOK, code)
			require.EqualValues(t, 3, last["requests"])
			lookup := []string{"lookup", name}
			if tc.perPID {
				lookup = append(lookup, "--pid", strconv.Itoa(srv.pid))
			}
			requireWithdrawn(t, lookup...)
		})
	}
}

// ping(8)'s spellings of a flag's value all work: attached to a one-letter flag ("-c2"), as the
// next argument, after "=" with one dash or two, and after the name.
func TestFlagSpellings(t *testing.T) {
	name := uniqueName(t)
	startServer(t, nil, "-q", name)
	for _, args := range [][]string{
		{"-c2", "-i0.01", "-s7", "-W2", name},
		{"-c", "2", "-i", "0.01", "-s", "7", "-W", "2", name},
		{"--c=2", "-i=10ms", "--s=7", "--W=2s", name},
		{name, "-c2", "-i0.01", "-s7", "-W2"},
		{"-s7", "-c2", "-i0.01", "--", name},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := runMachping(t, nil, append([]string{"ping", "--json"}, args...)...)
			requireCode(t, r, exitOK)
			doc := decode[pingDoc](t, r)
			require.Equal(t, 2, doc.Transmitted)
			require.Equal(t, 7, doc.Size)
		})
	}
	// lookup's -W too, and "--" keeps a name that looks like a flag.
	requireCode(t, runMachping(t, nil, "lookup", "-W2", name), exitOK)
	r := runMachping(t, nil, "lookup", "-W1", "--", "-c1")
	requireCode(t, r, exitUnknown)
	require.Contains(t, r.stdout, "-c1: not found")
}

// requireWithdrawn runs 'machping lookup' (args) until it says the name is unknown (exit 3),
// for up to 5 s: launchd withdraws a name asynchronously once its receive right dies.
func requireWithdrawn(t *testing.T, lookup ...string) {
	t.Helper()
	var r result
	testproc.Eventually(t, "the name is withdrawn", 5*time.Second, func() bool {
		r = runMachping(t, nil, lookup...)
		return r.code != exitOK
	})
	requireCode(t, r, exitUnknown)
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// The text output's shape: serve's log and ping's lines and summary.
func TestServeAndPingText(t *testing.T) {
	name := uniqueName(t)
	cmd := exec.Command(machping, "serve", name)
	c := testproc.StartCommand(t, cmd, "", "", childEnv+"=1")
	serving := c.Line(t)
	r := runMachping(t, nil, "ping", "-c", "2", "-i", "0", name)
	requireCode(t, r, exitOK)
	golden(t, "ping.golden", normalize(r.stdout, name))
	require.Equal(t, 2, strings.Count(r.stdout, fmt.Sprintf("bytes from %s (pid %d, uid %d): ", name, cmd.Process.Pid, os.Geteuid())),
		"each reply line names the server's pid and uid: %s", r.stdout)
	log := serving + "\n" + c.Line(t) + "\n" + c.Line(t) + "\n"
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	log += c.Line(t) + "\n"
	require.NoError(t, cmd.Wait())
	golden(t, "serve.golden", normalize(log, name))
}

func TestPingUnknownService(t *testing.T) {
	name := uniqueName(t)
	r := runMachping(t, nil, "ping", "-c", "1", name)
	requireCode(t, r, exitUnknown)
	require.Empty(t, r.stdout)
	golden(t, "ping-unknown.golden", normalize(r.stderr, name))

	r = runMachping(t, nil, "ping", "--json", "-c", "1", name)
	requireCode(t, r, exitUnknown)
	doc := decode[errorDoc](t, r)
	require.Equal(t, "ping", doc.Command)
	require.Equal(t, 1102, doc.Error.Code)
	require.Equal(t, "BOOTSTRAP_UNKNOWN_SERVICE", doc.Error.CodeName)
	require.Contains(t, doc.Error.Message, "unknown service")
	require.NotEmpty(t, doc.Error.Hints)
}

// A server that stops answering (SIGSTOP) loses replies: exit status 1, and the run goes on.
func TestPingLostReplies(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("raw=%v", raw), func(t *testing.T) {
			name := uniqueName(t)
			serve, ping := []string{"-q", name}, []string{"ping", "-c", "3", "-i", "0.05", "-W", "150ms", name}
			if raw {
				serve, ping = append([]string{"--raw"}, serve...), append(ping, "--raw")
			}
			srv := startServer(t, nil, serve...)
			cmd := exec.Command(machping, ping...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			defer cmd.Process.Kill()
			lines := bufio.NewScanner(stdout)
			var out strings.Builder
			for lines.Scan() {
				out.WriteString(lines.Text() + "\n")
				if strings.Contains(lines.Text(), "seq=1 ") {
					// Stopped, the server still holds its port: requests queue up unanswered.
					require.NoError(t, srv.child.Cmd.Process.Signal(syscall.SIGSTOP))
				}
			}
			_ = cmd.Wait()
			require.NoError(t, srv.child.Cmd.Process.Signal(syscall.SIGCONT))
			require.Equal(t, exitNegative, cmd.ProcessState.ExitCode(), "stdout:\n%s\nstderr:\n%s", out.String(), stderr.String())
			require.Contains(t, out.String(), "seq=2: no reply within 150ms\nseq=3: no reply within 150ms\n")
			require.Contains(t, out.String(), "3 requests transmitted, 1 replies received, 66.7% loss\n")
			require.Empty(t, stderr.String(), "the server is alive: nothing to diagnose")
		})
	}
}

// Commands machping suggests are quoted for the shell, so that they can be pasted as printed.
func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"com.example.echo", "com.example.echo"},
		{"group.com.example-app_2:x@y%z+w=v,u/t", "group.com.example-app_2:x@y%z+w=v,u/t"},
		{"com.ex ample", "'com.ex ample'"},
		{"it's", `'it'\''s'`},
		{"", "''"},
		{"$HOME", "'$HOME'"},
		{"a*", "'a*'"},
		{"é", "'é'"},
	} {
		require.Equal(t, tc.want, shellQuote(tc.in), "%q", tc.in)
	}
	require.Equal(t, "machping serve --pid 'com.ex ample'", shellCommand("serve", "--pid", "com.ex ample"))
}

// A name with a space: the hints quote it, and a 1100 for a name another process owns, where
// the sandbox allows registering it, says so and nothing about the App Sandbox.
func TestHintsForAwkwardNames(t *testing.T) {
	name := fmt.Sprintf("com.machport.machping.ex ample.%d", os.Getpid())
	r := runMachping(t, nil, "ping", "-c", "1", name)
	requireCode(t, r, exitUnknown)
	require.Contains(t, r.stderr, "  hint: check that the server is running, or start one: machping serve '"+name+"'\n")
	golden(t, "ping-unknown-quoted.golden", normalize(r.stderr, name))

	startServer(t, nil, name)
	r = runMachping(t, nil, "serve", name)
	requireCode(t, r, exitRefused)
	golden(t, "serve-taken.golden", normalize(r.stderr, name))
	require.NotContains(t, r.stderr, "Sandbox")
	require.NotContains(t, r.stderr, "application group")

	r = runMachping(t, nil, "register", name)
	requireCode(t, r, exitRefused)
	require.Contains(t, r.stdout, "sandbox allows mach-register "+name+": yes\n")
	require.Contains(t, r.stdout, "not privileged (1100): another process already serves this name (the sandbox allows registering it)\n")
	require.NotContains(t, r.stdout, "App Sandbox")
	require.Contains(t, r.stdout, "  hint: see whether it answers: machping lookup '"+name+"'\n")
}

// Killing the server during a ping ends the run at once with a diagnosis and exit status 1.
func TestKillServerDuringPing(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("raw=%v", raw), func(t *testing.T) {
			name := uniqueName(t)
			serve, ping := []string{"-q", name}, []string{"ping", "-c", "100000", "-i", "5ms", "-W", "30s", name}
			if raw {
				serve, ping = append([]string{"--raw"}, serve...), append(ping, "--raw")
			}
			srv := startServer(t, nil, serve...)
			cmd := exec.Command(machping, ping...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdout, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			defer cmd.Process.Kill()
			lines := bufio.NewScanner(stdout)
			for replies := 0; replies < 3 && lines.Scan(); {
				if strings.Contains(lines.Text(), " bytes from ") {
					replies++
				}
			}
			killed := time.Now()
			require.NoError(t, srv.child.Cmd.Process.Kill())
			var rest strings.Builder
			for lines.Scan() {
				rest.WriteString(lines.Text() + "\n")
			}
			err = cmd.Wait()
			require.Less(t, time.Since(killed), 10*time.Second, "the death is noticed at once, not at -W")
			require.Equal(t, exitNegative, cmd.ProcessState.ExitCode(), "err %v\nstdout after the kill:\n%s\nstderr:\n%s", err, rest.String(), stderr.String())
			require.Contains(t, rest.String(), "ping statistics ---")
			require.Contains(t, stderr.String(), "the server died")
		})
	}
}

func TestLookup(t *testing.T) {
	name := uniqueName(t)
	srv := startServer(t, nil, "--pid", name)
	owner := fmt.Sprintf("pid %d (%s)", srv.pid, ownerPIDNote)
	if runtime.GOOS != "linux" {
		owner = "unknown (" + ownerPIDNote + ")"
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
		found  bool
	}{
		{args: []string{name, "--pid", strconv.Itoa(srv.pid)}, code: exitOK, stdout: name + ": found: send right 0x", found: true},
		{args: []string{name, "--pid", strconv.Itoa(srv.pid)}, code: exitOK, stdout: "\n  served by " + owner + "\n", found: true},
		{args: []string{name}, code: exitUnknown, stdout: name + ": not found (1102 unknown service)", stderr: "or start one: machping serve " + name},
		{args: []string{""}, code: exitInvalid, stderr: "is empty"},
	} {
		r := runMachping(t, nil, append([]string{"lookup"}, tc.args...)...)
		requireCode(t, r, tc.code)
		require.Contains(t, r.stdout, tc.stdout)
		require.Contains(t, r.stderr, tc.stderr)

		r = runMachping(t, nil, append([]string{"lookup", "--json"}, tc.args...)...)
		requireCode(t, r, tc.code)
		var doc lookupDoc
		if tc.code != exitOK && tc.code != exitUnknown { // no look-up's answer: an error document
			e := decode[errorDoc](t, r)
			require.Contains(t, e.Error.Message, "cannot look up")
			continue
		}
		doc = decode[lookupDoc](t, r)
		require.Equal(t, tc.found, doc.Found)
		if tc.found {
			require.Equal(t, "send", doc.Right.Type)
			require.Equal(t, srv.pid, doc.PID)
			if runtime.GOOS == "linux" {
				require.Equal(t, srv.pid, doc.Owner)
			} else {
				require.Zero(t, doc.Owner, "launchd does not tell")
			}
		} else {
			require.Equal(t, 1102, doc.Failure.Code)
		}
	}
}

func TestRegister(t *testing.T) {
	free := uniqueName(t)
	r := runMachping(t, nil, "register", free)
	requireCode(t, r, exitOK)
	require.Contains(t, r.stdout, "register (bootstrap_register2): ok, withdrawn again")
	require.Contains(t, r.stdout, free+": this process may register it")

	r = runMachping(t, nil, "register", "--json", free)
	requireCode(t, r, exitOK)
	doc := decode[registerDoc](t, r)
	require.True(t, doc.MayRegister)
	require.True(t, doc.Register.OK)
	require.True(t, doc.Register.Withdrawn)
	require.NotNil(t, doc.CheckIn)
	// launchd makes a name nobody declares a service of the process checking it in (see
	// bootstrap.CheckIn), and the Linux namespace does the same.
	require.True(t, doc.CheckIn.OK, "check-in makes an undeclared name")
	require.True(t, doc.CheckIn.Withdrawn)
	require.Equal(t, map[string]bool{"mach-register": true, "mach-lookup": true}, doc.SandboxAllows)
	// Withdrawn: nobody serves it now.
	requireWithdrawn(t, "lookup", free)

	// A name another process serves is refused.
	taken := uniqueName(t)
	startServer(t, nil, taken)
	r = runMachping(t, nil, "register", "--json", taken)
	requireCode(t, r, exitRefused)
	doc = decode[registerDoc](t, r)
	require.False(t, doc.MayRegister)
	require.False(t, doc.Register.OK)
	require.Contains(t, []int{1100, 1101}, doc.Register.Failure.Code) // launchd may answer either

	// Per-PID names skip check-in.
	r = runMachping(t, nil, "register", "--json", "--pid", taken)
	requireCode(t, r, exitOK)
	doc = decode[registerDoc](t, r)
	require.True(t, doc.PerPID)
	require.Nil(t, doc.CheckIn)
	require.True(t, doc.Register.OK)
}

func TestCheck(t *testing.T) {
	const group = "group.com.example.app"
	long := group + "." + strings.Repeat("x", 120)
	for _, tc := range []struct {
		name    string
		groups  []string
		code    int
		rule    string
		example string
	}{
		{name: group + ".worker", groups: []string{group}},
		{name: "com.example.worker"},
		{name: "com.example.worker", groups: []string{group}, code: exitRefused, rule: "outside-groups", example: group + ".worker"},
		{name: group, groups: []string{group}, code: exitRefused, rule: "empty-rest"},
		{name: long, groups: []string{group}, code: exitInvalid, rule: "too-long"},
		{name: "", code: exitInvalid, rule: "empty"},
		{name: "x.y", groups: []string{"not a group"}, code: exitError, rule: "bad-group"},
		{name: "group.b.example.worker", groups: []string{"group.a.example", "group.b.example"}},
	} {
		t.Run(tc.rule+tc.name[:min(len(tc.name), 30)], func(t *testing.T) {
			args := []string{"check", "--json"}
			for _, g := range tc.groups {
				args = append(args, "--group", g)
			}
			r := runMachping(t, nil, append(args, tc.name)...)
			requireCode(t, r, tc.code)
			doc := decode[checkDoc](t, r)
			require.Equal(t, tc.code == exitOK, doc.Valid)
			require.Equal(t, tc.rule, doc.Rule)
			require.Equal(t, tc.name, doc.Name)
			if tc.example != "" {
				require.Equal(t, tc.example, doc.Example)
			}
			if len(tc.groups) > 0 {
				require.Equal(t, "flags", doc.GroupsFrom)
				require.Equal(t, tc.groups, doc.Groups)
			}
			require.NotEmpty(t, doc.Sandbox.Source)
		})
	}
	r := runMachping(t, nil, "check", "--group", group, "com.example.worker")
	requireCode(t, r, exitRefused)
	golden(t, "check-outside.golden", normalize(r.stdout))
}

func TestRights(t *testing.T) {
	name := uniqueName(t)
	startServer(t, nil, name)
	r := runMachping(t, nil, "rights", "--json", "--lookup", name)
	requireCode(t, r, exitOK)
	doc := decode[rightsDoc](t, r)
	require.Equal(t, r.pid, doc.PID)
	require.NotNil(t, doc.Lookup)
	require.Contains(t, doc.Names, *doc.Lookup.Right, "the looked-up right is in the table")
	require.Equal(t, rightInfo{Name: doc.Lookup.Right.Name, Type: "send", URefs: 1}, *doc.Lookup.Right, "one user reference")
	require.True(t, doc.Self)
	require.True(t, doc.Complete)
	require.NotEmpty(t, doc.FDs)

	r = runMachping(t, nil, "rights", "--lookup", name)
	requireCode(t, r, exitOK)
	require.Regexp(t, `(?m)^port names of pid \d+ \(`+regexp.QuoteMeta(ipcBackend())+`\): \d+\n  name +rights +urefs\n`, r.stdout)
	require.Regexp(t, `(?m)^  0x[0-9a-f]+ +send +1$`, r.stdout)
	require.Contains(t, r.stdout, "file descriptors: ")
}

// rights --pid lists another process's rights, as lsmp -p: on Linux from the table the process
// serves, with its descriptors and served names; and says so, exit status 4, where this user may
// not look.
func TestRightsOfAnotherProcess(t *testing.T) {
	name := uniqueName(t)
	srv := startServer(t, nil, name)
	r := runMachping(t, nil, "rights", "--json", "--pid", strconv.Itoa(srv.pid))
	if runtime.GOOS == "linux" {
		requireCode(t, r, exitOK)
		doc := decode[rightsDoc](t, r)
		require.Equal(t, srv.pid, doc.PID)
		require.False(t, doc.Self)
		require.True(t, doc.Complete, "the process serves its emulated table")
		require.NotEmpty(t, doc.Names)
		receive := false
		for _, n := range doc.Names {
			receive = receive || strings.Contains(n.Type, "receive")
		}
		require.True(t, receive, "the served port's receive right: %v", doc.Names)
		require.Equal(t, []string{name}, doc.Services)
		require.Contains(t, fmt.Sprint(doc.FDs), "socket:[", "the channel sockets of its ports")

		r = runMachping(t, nil, "rights", "--pid", strconv.Itoa(srv.pid))
		requireCode(t, r, exitOK)
		golden(t, "rights-pid.golden", regexp.MustCompile(`(?s)file descriptors: .*`).ReplaceAllString(normalize(r.stdout, name), "file descriptors: ...\n"))
	} else if os.Geteuid() != 0 {
		requireCode(t, r, exitRefused) // task_for_pid is root's
	} else {
		requireCode(t, r, exitOK)
		require.True(t, decode[rightsDoc](t, r).Complete)
	}

	r = runMachping(t, nil, "rights", "--pid", strconv.Itoa(1<<30))
	requireCode(t, r, exitError)
	require.Contains(t, r.stderr, fmt.Sprintf("cannot list the rights of pid %d", 1<<30))

	r = runMachping(t, nil, "rights", "--pid", "1", "--lookup", name)
	requireCode(t, r, exitError)
	require.Contains(t, r.stderr, "does not go with --pid")
}

// Where this user may not inspect the process, rights --pid says so, with exit status 4.
func TestRightsNotPermitted(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs a second user: on macOS task_for_pid refuses any non-root caller, tested in TestRightsOfAnotherProcess")
	}
	cmd := exec.Command(machping, "rights", "--pid", "1")
	if os.Geteuid() == 0 {
		// root may read every process: look at this one as nobody instead.
		require.NoError(t, os.Chmod(filepath.Dir(machping), 0o755))
		cmd = exec.Command(machping, "rights", "--pid", strconv.Itoa(os.Getpid()))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	_ = cmd.Run()
	require.Equal(t, exitRefused, cmd.ProcessState.ExitCode(), "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	require.Empty(t, stdout.String())
	golden(t, "rights-not-permitted.golden", normalize(stderr.String()))
}

func TestBench(t *testing.T) {
	// A namespace and a temporary directory of the bench's own, to see that it leaves nothing in
	// either: its server withdraws its names and removes its socket before it exits.
	ns, tmp := t.TempDir(), t.TempDir()
	require.NoError(t, os.Chmod(ns, 0o700)) // the namespace's own rule
	env := []string{bootstrap.EnvDir + "=" + ns, "TMPDIR=" + tmp}
	t.Cleanup(func() { requireEmptyDir(t, ns); requireEmptyDir(t, tmp) })
	r := runMachping(t, env, "bench", "--json", "--time", "20ms", "--sizes", "64,8192")
	requireCode(t, r, exitOK)
	doc := decode[benchDoc](t, r)
	require.NotZero(t, doc.ServerPID)
	require.Equal(t, 1, doc.Concurrency)
	require.Len(t, doc.Results, 6)
	i := 0
	for _, size := range []int{64, 8192} {
		for _, transport := range []string{transportUnix, transportRaw, transportCF} {
			res := doc.Results[i]
			i++
			require.Equal(t, transport, res.Transport)
			require.Equal(t, size, res.Size)
			require.Equal(t, size > 4000 && transport != transportUnix, res.OutOfLine)
			require.Equal(t, 1, res.Requesters)
			require.GreaterOrEqual(t, res.RoundTrips, 10)
			require.Positive(t, res.P50Ms)
			require.LessOrEqual(t, res.P50Ms, res.P99Ms)
			require.Positive(t, res.PerSecond)
			require.Positive(t, res.MBPerS)
			if transport == transportUnix {
				require.Zero(t, res.VsUnix)
			} else {
				require.Positive(t, res.VsUnix)
			}
		}
	}
	require.Contains(t, r.stderr, "bench: echo server in child pid")
	require.Equal(t, 6, strings.Count(r.stderr, " round trips, p50 "), "progress on stderr: %s", r.stderr)

	r = runMachping(t, env, "bench", "--time", "10ms", "--sizes", "100", "--transports", "raw")
	requireCode(t, r, exitOK)
	require.Regexp(t, `(?m)^raw +100 B  inline +\d`, r.stdout)
	require.Contains(t, r.stdout, "one request at a time")

	// --concurrency: 4 requesters of each transport at once, each measured (10 round trips at
	// least, after its warm-up), their round trips counted together.
	r = runMachping(t, env, "bench", "--json", "--time", "20ms", "--sizes", "64", "--concurrency", "4")
	requireCode(t, r, exitOK)
	doc = decode[benchDoc](t, r)
	require.Equal(t, 4, doc.Concurrency)
	require.Len(t, doc.Results, 3)
	for i, transport := range []string{transportUnix, transportRaw, transportCF} {
		res := doc.Results[i]
		require.Equal(t, transport, res.Transport)
		require.Equal(t, 4, res.Requesters)
		require.GreaterOrEqual(t, res.RoundTrips, 4*10)
		require.Positive(t, res.P50Ms)
		require.LessOrEqual(t, res.P50Ms, res.P99Ms)
		require.Positive(t, res.PerSecond)
	}
	require.Contains(t, r.stderr, "4 requester(s) at once")
	r = runMachping(t, env, "bench", "--time", "10ms", "--sizes", "64", "--transports", "raw", "--concurrency", "3")
	requireCode(t, r, exitOK)
	require.Contains(t, r.stdout, "3 requesters at once")
	require.Regexp(t, `(?m)^raw +64 B  inline +\d`, r.stdout)

	// A TMPDIR too long for a socket path (as a test's folder under macOS's /var/folders is):
	// the server's socket goes under /tmp, and is removed there too.
	long := filepath.Join(tmp, strings.Repeat("d", 100))
	require.NoError(t, os.Mkdir(long, 0o700))
	inTmp := func() []string { m, _ := filepath.Glob("/tmp/" + benchDirPrefix + "*"); return m }
	before := inTmp()
	r = runMachping(t, []string{bootstrap.EnvDir + "=" + ns, "TMPDIR=" + long}, "bench", "--time", "10ms", "--sizes", "64", "--transports", "unix")
	requireCode(t, r, exitOK)
	require.ElementsMatch(t, before, inTmp(), "the /tmp folder is removed")
	require.NoError(t, os.Remove(long), "nothing left in the long TMPDIR")
}

// requireEmptyDir fails the test if anything was left in dir.
func requireEmptyDir(t *testing.T, dir string) {
	t.Helper()
	left, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, left, "left behind in %s", dir)
}

// running is a machping run in the background whose output the test reads as it comes.
type running struct {
	cmd            *exec.Cmd
	stdout, stderr lockedBuilder
}

// startRun starts machping with args and extra environment; it is killed when the test ends.
func startRun(t *testing.T, env []string, args ...string) *running {
	t.Helper()
	r := &running{cmd: exec.Command(machping, args...)}
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	require.NoError(t, r.cmd.Start())
	t.Cleanup(func() { r.cmd.Process.Kill() })
	return r
}

// interrupt sends SIGINT, as Ctrl-C does, and returns the run once it has exited, failing the
// test if that takes more than 15 s.
func (r *running) interrupt(t *testing.T) result {
	t.Helper()
	require.NoError(t, r.cmd.Process.Signal(os.Interrupt))
	exited := make(chan struct{})
	go func() { _ = r.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Fatalf("Ctrl-C did not end machping in 15 s; stderr:\n%s", r.stderr.String())
	}
	return result{stdout: r.stdout.String(), stderr: r.stderr.String(), code: r.cmd.ProcessState.ExitCode(), pid: r.cmd.Process.Pid}
}

// Ctrl-C ends a bench even when its server is stopped and answers nothing: the cases measured
// so far are printed, flagged as interrupted, with exit status 2.
func TestBenchInterruptedWithServerStopped(t *testing.T) {
	tmp := t.TempDir()
	run := startRun(t, []string{"TMPDIR=" + tmp}, "bench", "--json", "--time", "1s", "--sizes", "64", "--transports", "unix,raw")
	testproc.Eventually(t, "the bench measures raw", 20*time.Second, func() bool { return strings.Contains(run.stderr.String(), "bench: raw") })
	m := regexp.MustCompile(`echo server in child pid (\d+)`).FindStringSubmatch(run.stderr.String())
	require.NotNil(t, m, run.stderr.String())
	server, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	require.NoError(t, syscall.Kill(server, syscall.SIGSTOP))
	serverEnded := false
	defer func() {
		if !serverEnded { // machping has not reaped it, so the pid is still the server's
			syscall.Kill(server, syscall.SIGKILL)
		}
	}()
	time.Sleep(50 * time.Millisecond) // a request is now waiting for a reply that cannot come

	r := run.interrupt(t)
	serverEnded = true // machping waits for its child before it exits
	requireCode(t, r, exitError)
	doc := decode[benchDoc](t, r)
	require.True(t, doc.Interrupted)
	require.Len(t, doc.Results, 1, "the unix case, measured in full")
	require.Equal(t, transportUnix, doc.Results[0].Transport)
	require.Contains(t, r.stderr, "bench: raw                64 B ... interrupted")
	// The stopped server could not clean up, so it was killed after its grace period, and
	// machping removed the folder of its socket.
	requireEmptyDir(t, tmp)
}

// Ctrl-C during the self-test ends it at once as interrupted (exit 2, no answer), and its
// child withdraws the service name on the way out.
func TestSelfTestInterrupted(t *testing.T) {
	ns := t.TempDir()
	require.NoError(t, os.Chmod(ns, 0o700))
	run := startRun(t, []string{bootstrap.EnvDir + "=" + ns})
	testproc.Eventually(t, "the self-test pings", 20*time.Second, func() bool { return strings.Contains(run.stdout.String(), "PING ") })
	r := run.interrupt(t)
	requireCode(t, r, exitError)
	require.Contains(t, r.stdout, "self-test FAILED: interrupted\n")
	requireEmptyDir(t, ns) // the child withdrew its name
}

// Ctrl-C while a request is in flight counts it as transmitted and lost, as ping(8) does: before
// the first reply, that is 100% loss, exit status 1.
func TestPingInterruptedInFlight(t *testing.T) {
	name := uniqueName(t)
	// A raw server logs the CF request it received, and its echo is no CF reply: the request
	// is in flight, with no reply to come, once the log says so.
	srv := startServer(t, nil, "--raw", name)
	run := startRun(t, nil, "ping", "-i", "60", "-W", "60", name)
	require.Equal(t, "request", srv.event(t)["event"])
	r := run.interrupt(t)
	requireCode(t, r, exitNegative)
	golden(t, "ping-interrupted.golden", normalize(r.stdout, name))

	run = startRun(t, nil, "ping", "--json", "-W", "60", name)
	require.Equal(t, "request", srv.event(t)["event"])
	r = run.interrupt(t)
	requireCode(t, r, exitNegative)
	doc := decode[pingDoc](t, r)
	require.Equal(t, 1, doc.Transmitted)
	require.Zero(t, doc.Received)
	require.EqualValues(t, 100, doc.LossPercent)
	require.Equal(t, []pingReply{{Seq: 1, Error: "interrupted before the reply came"}}, doc.Replies)
}

// When no request gets a reply, ping says to try the other protocol.
func TestPingWrongProtocol(t *testing.T) {
	for _, raw := range []bool{false, true} {
		t.Run(fmt.Sprintf("server raw=%v", raw), func(t *testing.T) {
			name := uniqueName(t)
			serve, ping := []string{"-q", name}, []string{"ping", "-c", "2", "-i", "0", "-W", "200ms", name}
			if raw {
				serve = append([]string{"--raw"}, serve...)
			} else {
				ping = append(ping, "--raw")
			}
			startServer(t, nil, serve...)
			r := runMachping(t, nil, ping...)
			requireCode(t, r, exitNegative)
			require.Contains(t, r.stdout, "2 requests transmitted, 0 replies received, 100.0% loss\n")
			want := "hint: if the server speaks the raw echo protocol ('machping serve --raw'), ping it with --raw; " +
				"if it serves with --require, this process may fail it (the server logs the predicate; 'machping check-peer' checks one)\n"
			if !raw {
				want = "hint: if the server is a CFMessagePort service (not 'machping serve --raw'), ping it without --raw; " +
					"if it serves with --require, this process may fail it (the server logs the predicate; 'machping check-peer' checks one)\n"
			}
			require.Contains(t, r.stdout, want)

			r = runMachping(t, nil, append([]string{"--json"}, ping...)...)
			requireCode(t, r, exitNegative)
			require.Equal(t, "hint: "+decode[pingDoc](t, r).Hint+"\n", want)
		})
	}
}

// Malformed application groups are this process's problem, not the name's: the diagnosis says
// which group, and register cannot answer (exit 2) rather than answering no.
func TestMalformedGroups(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("MACHPORT_APP_GROUPS declares the emulated sandbox's groups, which only Linux has")
	}
	env := []string{"MACHPORT_APP_GROUPS=bad group"}
	r := runMachping(t, env, "register", "com.example.x")
	requireCode(t, r, exitError)
	require.Contains(t, r.stdout+r.stderr, `this process's application group "bad group" is malformed`)
	incomplete := regexp.MustCompile(`(?m)^  \(sandbox state incomplete: .*$`).FindString(r.stdout)
	require.Equal(t, 1, strings.Count(incomplete, "is malformed"), "said once: %s", incomplete)
	require.Contains(t, r.stdout+r.stderr, "hint: the groups come from SetApplicationGroups, else MACHPORT_APP_GROUPS (comma-separated")

	r = runMachping(t, env, "--json")
	requireCode(t, r, exitNegative)
	doc := decode[selftestDoc](t, r)
	require.NotNil(t, doc.Failure)
	require.Contains(t, doc.Failure.Message, `application group "bad group" is malformed`, "the child's diagnosis, not its JSON")
}
