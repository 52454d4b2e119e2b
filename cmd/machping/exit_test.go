package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/cfmessageport"
	"github.com/machport/machport/peer"
	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

// One cause, one exit status: whichever of lookup, ping, check, register, serve and rights meets a
// cause exits with the status exitTable gives it, in text and in JSON.
func TestSameCauseSameExitStatus(t *testing.T) {
	const group = "group.com.machport.machping"
	sandbox := []string{sandboxcheck.EnvAppGroups + "=" + group}
	// Each command's arguments for a name.
	commands := map[string]func(name string) []string{
		"lookup":   func(name string) []string { return []string{"lookup", name} },
		"ping":     func(name string) []string { return []string{"ping", "-c", "1", name} },
		"check":    func(name string) []string { return []string{"check", name} },
		"register": func(name string) []string { return []string{"register", name} },
		"rights":   func(name string) []string { return []string{"rights", "--lookup", name} },
		"serve":    func(name string) []string { return []string{"serve", name} }, // only where it fails
	}
	for _, tc := range []struct {
		cause     string
		linuxOnly bool // the emulated sandbox of MACHPORT_APP_GROUPS
		env       []string
		name      func(t *testing.T) string
		want      map[string]int // by command; a command missing here does not meet the cause
	}{
		{cause: "never registered",
			name: uniqueName,
			want: map[string]int{"lookup": exitUnknown, "ping": exitUnknown, "rights": exitUnknown}},
		{cause: "server killed",
			name: func(t *testing.T) string {
				name := uniqueName(t)
				srv := startServer(t, nil, name)
				require.NoError(t, srv.child.Cmd.Process.Kill())
				_ = srv.child.Cmd.Wait()
				return name
			},
			want: map[string]int{"lookup": exitUnknown, "ping": exitUnknown, "rights": exitUnknown}},
		{cause: "served by another process",
			name: func(t *testing.T) string { name := uniqueName(t); startServer(t, nil, name); return name },
			want: map[string]int{"lookup": exitOK, "ping": exitOK, "check": exitOK, "rights": exitOK, "register": exitRefused, "serve": exitRefused}},
		{cause: "outside the app groups", linuxOnly: true, env: sandbox,
			name: func(t *testing.T) string { name := uniqueName(t); startServer(t, nil, name); return name },
			want: map[string]int{"lookup": exitRefused, "ping": exitRefused, "check": exitRefused, "register": exitRefused,
				"rights": exitRefused, "serve": exitRefused}},
		{cause: "the app group itself", linuxOnly: true, env: sandbox,
			name: func(*testing.T) string { return group },
			want: map[string]int{"lookup": exitRefused, "ping": exitRefused, "check": exitRefused, "register": exitRefused,
				"rights": exitRefused, "serve": exitRefused}},
		{cause: "empty name", // rights --lookup "" means no look-up
			name: func(*testing.T) string { return "" },
			want: map[string]int{"lookup": exitInvalid, "ping": exitInvalid, "check": exitInvalid, "register": exitInvalid,
				"serve": exitInvalid}},
		{cause: "too long",
			name: func(t *testing.T) string { return uniqueName(t) + "." + strings.Repeat("x", 200) },
			want: map[string]int{"lookup": exitInvalid, "ping": exitInvalid, "check": exitInvalid, "register": exitInvalid,
				"rights": exitInvalid, "serve": exitInvalid}},
		{cause: "bad UTF-8",
			name: func(t *testing.T) string { return uniqueName(t) + ".\xff" },
			want: map[string]int{"lookup": exitInvalid, "ping": exitInvalid, "check": exitInvalid, "register": exitInvalid,
				"rights": exitInvalid, "serve": exitInvalid}},
		{cause: "malformed app groups", linuxOnly: true, env: []string{sandboxcheck.EnvAppGroups + "=bad group"},
			name: uniqueName,
			want: map[string]int{"lookup": exitError, "ping": exitError, "check": exitError, "register": exitError,
				"rights": exitError, "serve": exitError}},
	} {
		t.Run(tc.cause, func(t *testing.T) {
			if tc.linuxOnly && runtime.GOOS != "linux" {
				t.Skip("MACHPORT_APP_GROUPS declares the emulated sandbox's groups, which only Linux has")
			}
			name := tc.name(t)
			for command, code := range tc.want {
				args := commands[command](name)
				r := runMachping(t, tc.env, args...)
				requireCode(t, r, code)
				r = runMachping(t, tc.env, append([]string{"--json"}, args...)...)
				requireCode(t, r, code)
				require.True(t, json.Valid([]byte(r.stdout)), "%s --json: %s", command, r.stdout)
			}
		})
	}
}

// exitFor and the table 'machping help' prints agree with the library's sentinels: each cause's
// sentinel gives its row's status, and every status is documented once in the help.
func TestExitTable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{bootstrap.ErrUnknownService, exitUnknown},
		{&cfmessageport.Error{Op: "dial", Name: "n", Err: &bootstrap.Error{Op: "bootstrap_look_up", Name: "n", Code: bootstrap.ErrUnknownService}}, exitUnknown},
		{bootstrap.ErrNotPrivileged, exitRefused},
		{bootstrap.ErrNameInUse, exitRefused},
		{bootstrap.ErrServiceActive, exitRefused},
		{sandboxcheck.ValidateName("x.y", "group.com.example"), exitRefused},
		{sandboxcheck.ValidateName("group.com.example", "group.com.example"), exitRefused},
		{sandboxcheck.ValidateName(""), exitInvalid},
		{sandboxcheck.ValidateName("a\x00b"), exitInvalid},
		{sandboxcheck.ValidateName("\xff"), exitInvalid},
		{sandboxcheck.ValidateName(strings.Repeat("x", 128)), exitInvalid},
		{sandboxcheck.ValidateName("x.y", "not a group"), exitError},
		{cfmessageport.ErrBecameInvalid, exitError},
		{os.ErrDeadlineExceeded, exitError},
		// ping --require: the error a rejected reply gives, as the Remote wraps it.
		{&cfmessageport.Error{Op: "request", Name: "n", Status: cfmessageport.ErrInvalid,
			Err: fmt.Errorf("%w: %w", cfmessageport.ErrPeerRejected, &peer.CheckError{Predicate: "uid == 1", PID: 2, Err: peer.ErrUIDMismatch})}, exitRefused},
		{errNotPermitted, exitRefused}, // rights --pid, check-peer
		{errNoProcess, exitError},
	} {
		require.Equal(t, tc.want, exitFor(tc.err), "%v", tc.err)
	}
	r := runMachping(t, nil, "help")
	requireCode(t, r, exitOK)
	for _, row := range exitTable {
		require.Equal(t, 1, strings.Count(r.stdout, "\n  "+string(rune('0'+row.status))+"  "), "status %d in:\n%s", row.status, r.stdout)
	}
}
