package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// machpingExe is the built machping's path as the kernel reports it (what exe= compares).
func machpingExe(t *testing.T) string {
	t.Helper()
	exe, err := filepath.EvalSymlinks(machping)
	require.NoError(t, err)
	return exe
}

// serve --require drops the requests of a client that fails it, unanswered and counted, and
// serves one that meets it; with --raw as with CFMessagePort. A raw client learns at once that
// its request was dropped (its send-once reply right is destroyed); a CF client waits out -W.
func TestServeRequire(t *testing.T) {
	self := os.Geteuid()
	for _, proto := range []struct {
		name   string
		flags  []string
		noRply string // what ping says of a dropped request
	}{
		{"cfmessageport", nil, "seq=1: no reply within 300ms"},
		{"raw", []string{"--raw"}, "seq=1: the server dropped the request without answering"},
	} {
		for _, tc := range []struct {
			name    string
			expr    string
			served  bool
			dropped float64
		}{
			{"another user", fmt.Sprintf("uid=%d", self+1), false, 1},
			{"another executable", fmt.Sprintf("uid=%d; exe=/nonexistent/client", self), false, 1},
			{"this user", fmt.Sprintf("uid=%d", self), true, 0},
			{"this user, machping", fmt.Sprintf("uid=4242,%d; exe=%s", self, machpingExe(t)), true, 0},
		} {
			t.Run(proto.name+"/"+tc.name, func(t *testing.T) {
				name := uniqueName(t)
				srv := startServer(t, nil, append(append([]string{}, proto.flags...), "--require", tc.expr, name)...)
				r := runMachping(t, nil, append(append([]string{"ping"}, proto.flags...), "-c", "1", "-W", "300ms", name)...)
				if tc.served {
					requireCode(t, r, exitOK)
					require.Equal(t, "request", srv.event(t)["event"])
				} else {
					requireCode(t, r, exitNegative)
					require.Contains(t, r.stdout, proto.noRply)
					require.Contains(t, r.stdout, "if it serves with --require, this process may fail it")
					golden(t, "serve-require-dropped-"+proto.name+".golden", normalize(r.stdout, name))
				}
				last, code := srv.interrupt(t)
				require.Equal(t, exitOK, code)
				require.Equal(t, tc.dropped, last["dropped"], "%v", last)
				if tc.served {
					require.EqualValues(t, 1, last["requests"])
				} else {
					require.EqualValues(t, 0, last["requests"], "the handler never ran")
				}
			})
		}
	}
}

// ping --require stops at the first reply from a server that fails it, names the predicate,
// and exits 4; a server that meets it is pinged as usual; with --raw as with CFMessagePort, in
// the same words.
func TestPingRequire(t *testing.T) {
	for _, proto := range []struct {
		name  string
		flags []string
	}{
		{"cfmessageport", nil},
		{"raw", []string{"--raw"}},
	} {
		t.Run(proto.name, func(t *testing.T) {
			name := uniqueName(t)
			srv := startServer(t, nil, append(append([]string{}, proto.flags...), "-q", name)...)
			ping := func(args ...string) result {
				return runMachping(t, nil, append(append(append([]string{"ping"}, proto.flags...), args...), name)...)
			}

			r := ping("-c", "3", "-i", "0", "--require", "exe=/nonexistent")
			requireCode(t, r, exitRefused)
			require.Contains(t, r.stdout, fmt.Sprintf(`seq=1: the reply from pid %d fails the requirement: executable == "/nonexistent" (it has executable %q)`,
				srv.pid, machpingExe(t)))
			require.Contains(t, r.stdout, "1 requests transmitted, 0 replies received, 100.0% loss", "the run stops at the rejection")
			require.Contains(t, r.stderr, fmt.Sprintf(`machping: the server of %s (pid %d) fails the requirement: executable == "/nonexistent"`, name, srv.pid))
			require.Contains(t, r.stderr, fmt.Sprintf("hint: machping check-peer %d exe=/nonexistent", srv.pid))
			norm := func(s string) string {
				s = strings.ReplaceAll(normalize(s, name, machpingExe(t)), strconv.Itoa(srv.pid), "PID")
				return s
			}
			golden(t, "ping-require-rejected-"+proto.name+".golden", norm(r.stdout)+"--- stderr\n"+norm(r.stderr))

			r = ping("--json", "-c", "2", "-i", "0", "--require", fmt.Sprintf("uid=%d;pid=1", os.Geteuid()))
			requireCode(t, r, exitRefused)
			doc := decode[pingDoc](t, r)
			require.Equal(t, fmt.Sprintf("uid=%d; pid=1", os.Geteuid()), doc.Require)
			require.Equal(t, &rejection{Seq: 1, PID: srv.pid, Predicate: "pid == 1"}, doc.Rejected)
			require.Equal(t, 1, doc.Transmitted)
			require.Zero(t, doc.Received)
			require.NotNil(t, doc.Failure)

			r = ping("--json", "-c", "2", "-i", "0", "--require",
				fmt.Sprintf("uid=%d; pid=%d; exe=%s", os.Geteuid(), srv.pid, machpingExe(t)))
			requireCode(t, r, exitOK)
			doc = decode[pingDoc](t, r)
			require.Nil(t, doc.Rejected)
			require.Equal(t, 2, doc.Received)
		})
	}
}

// A requirement that does not parse is bad usage (exit 2), naming the bad item, in every
// command that takes one.
func TestBadRequirement(t *testing.T) {
	name := uniqueName(t)
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"check-peer", pid, "uid=abc"}, `"uid=abc": uid takes decimal ids`},
		{[]string{"check-peer", pid, ""}, "empty"},
		{[]string{"check-peer", pid, "uid=1;;gid=2"}, "an empty item"},
		{[]string{"check-peer", pid, "user=501"}, `unknown key "user"`},
		{[]string{"check-peer", pid, "exe=bin/sh"}, "exe takes an absolute path"},
		{[]string{"check-peer", pid}, "check-peer needs a PID and an EXPR"},
		{[]string{"check-peer", "0", "uid=1"}, "PID must be a process id"},
		{[]string{"serve", "--require", "pid=x", name}, `"pid=x"`},
		{[]string{"serve", "--raw", "--require", "uid=x", name}, `"uid=x"`},
		{[]string{"ping", "--require", "gid=1;gid=2", name}, "gid given twice"},
		{[]string{"ping", "--raw", "--require", "exe=rel", name}, "exe takes an absolute path"},
	} {
		r := runMachping(t, nil, tc.args...)
		requireCode(t, r, exitError)
		require.Contains(t, r.stderr, tc.want, "%v", tc.args)
		require.Empty(t, r.stdout, "%v", tc.args)
	}
	// The name was never registered: serve refused before serving.
	requireCode(t, runMachping(t, nil, "lookup", name), exitUnknown)
}
