//go:build darwin && !ios

package bootstrap_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/machport/machport/bootstrap"
	"github.com/machport/machport/internal/testproc"
	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// launchdTestEnv opts in to TestLaunchdCheckIn, which loads a launch agent into the user's
// launchd domain: CI sets it; on a developer's Mac it is a deliberate choice.
const launchdTestEnv = "MACHPORT_TEST_LAUNCHD"

func init() { extraRoles["launchd-agent"] = runLaunchdAgent }

// runLaunchdAgent is the launch agent's body: launchd started it because a message arrived on
// the MachService its plist declares. It checks the name in, answers that one request with its
// pid and what a second check-in said, and exits.
func runLaunchdAgent(name string) error {
	port, err := bootstrap.CheckIn(name)
	if err != nil {
		return fmt.Errorf("check-in: %w", err)
	}
	defer port.Close()
	second := "ok"
	if again, err := bootstrap.CheckIn(name); err != nil {
		second = "refused"
		var be *bootstrap.Error
		if errors.As(err, &be) {
			second = fmt.Sprintf("refused(%d)", int32(be.Code))
		}
	} else if again.Name() != port.Name() {
		again.Close() // a second receive right would be a launchd bug; give it back
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var req mach.Message
	if err := mach.Receive(ctx, port, &req); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	reply, ok := req.TakeRemote().(*mach.SendOnceRight)
	req.Destroy()
	if !ok {
		return errors.New("the request carried no send-once reply right")
	}
	body := fmt.Sprintf("checked-in %s pid=%d second=%s", name, os.Getpid(), second)
	return mach.Send(ctx, &mach.Message{Remote: mach.MoveSendOnceOf(reply), ID: idEcho, Body: []byte(body)})
}

// launchAgentPlist is a per-user launch agent that runs this test binary as runLaunchdAgent
// on demand for the MachService name.
func launchAgentPlist(t *testing.T, label, name, logPath string) []byte {
	t.Helper()
	// launchd starts the job in /, so the binary's path must be absolute.
	self, err := os.Executable()
	require.NoError(t, err)
	esc := func(s string) string {
		var b bytes.Buffer
		require.NoError(t, xml.EscapeText(&b, []byte(s)))
		return b.String()
	}
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key><string>%s</string>
	<key>ProgramArguments</key>
	<array><string>%s</string><string>-test.run=^$</string></array>
	<key>EnvironmentVariables</key>
	<dict>
		<key>%s</key><string>launchd-agent</string>
		<key>%s</key><string>%s</string>
	</dict>
	<key>MachServices</key>
	<dict><key>%s</key><true/></dict>
	<key>StandardOutPath</key><string>%s</string>
	<key>StandardErrorPath</key><string>%s</string>
</dict>
</plist>
`, esc(label), esc(self), testproc.RoleEnv, testproc.NameEnv, esc(name), esc(name), esc(logPath), esc(logPath))
}

// launchctl runs launchctl, failing the test with its output.
func launchctl(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command("launchctl", args...).CombinedOutput()
	require.NoError(t, err, "launchctl %s: %s", strings.Join(args, " "), out)
}

// A per-user launch agent whose plist declares a MachService: launchd holds the name before the
// job runs, starts the job when a message arrives, and hands the job the receive right through
// CheckIn; a process that is not the job cannot check the name in; booting the job out
// withdraws it.
func TestLaunchdCheckIn(t *testing.T) {
	if os.Getenv(launchdTestEnv) != "1" {
		t.Skipf("loads a launch agent into this user's launchd domain; set %s=1 to run it (CI does)", launchdTestEnv)
	}
	// Without a GUI login session there is no gui/<uid> domain to load the agent into, and
	// launchctl managername answers something else than "Aqua" ("System" on a CI runner started
	// as a LaunchDaemon). The workflow's darwin-only job accepts this skip only where it reads
	// the same answer itself (its launchd_skip text is this message's; internal/cicheck checks).
	out, err := exec.Command("launchctl", "managername").CombinedOutput()
	require.NoError(t, err, "launchctl managername: %s", out)
	if manager := strings.TrimSpace(string(out)); manager != "Aqua" {
		t.Skipf("needs a GUI login session: launchctl managername is %q, not Aqua, so launchd has no gui/%d domain to load the agent into",
			manager, os.Getuid())
	}
	name := uniqueName(t)
	dir := t.TempDir()
	plist := filepath.Join(dir, name+".plist")
	logPath := filepath.Join(dir, "agent.log")
	require.NoError(t, os.WriteFile(plist, launchAgentPlist(t, name, name, logPath), 0o644))

	// The agent goes into this login session's GUI domain, whose bootstrap namespace this
	// process looks names up in; bootstrap and bootout, unlike the legacy load and unload,
	// report failure in their exit status.
	domain := fmt.Sprintf("gui/%d", os.Getuid())
	launchctl(t, "bootstrap", domain, plist)
	loaded := true
	unload := func() {
		if loaded {
			loaded = false
			launchctl(t, "bootout", domain+"/"+name)
		}
	}
	t.Cleanup(unload)
	agentLog := func() string { b, _ := os.ReadFile(logPath); return string(b) }

	ctx := testproc.Context(t, 30*time.Second)
	svc, err := bootstrap.LookUp(ctx, name)
	require.NoError(t, err, "launchd holds a declared MachService before its job runs")
	defer svc.Close()

	reply, err := mach.NewPort(mach.PortOptions{})
	require.NoError(t, err)
	defer reply.Close()
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(svc), Local: mach.MakeSendOnceOf(reply),
		ID: idEcho, Body: []byte("hello")}))
	var m mach.Message
	require.NoError(t, mach.Receive(ctx, reply, &m), "no answer from the launch agent; its log:\n%s", agentLog())
	defer m.Destroy()

	var gotName, second string
	var pid int
	body := string(bytes.TrimRight(m.Body, "\x00"))
	_, err = fmt.Sscanf(body, "checked-in %s pid=%d second=%s", &gotName, &pid, &second)
	require.NoError(t, err, "the agent's answer %q", body)
	require.Equal(t, name, gotName)
	require.NotEqual(t, os.Getpid(), pid, "the service ran in the job launchd started")
	require.Equal(t, pid, m.Trailer.Audit.PID(), "the reply's audit token names the agent")
	require.True(t, strings.HasPrefix(second, "refused"), "a name already checked in is not handed out twice: %s", second)
	t.Logf("a second check-in in the agent: %s", second)

	// Only the job that declares the name may check it in.
	port, err := bootstrap.CheckIn(name)
	if err == nil {
		port.Close()
	}
	var be *bootstrap.Error
	require.ErrorAs(t, err, &be, "CheckIn of another job's name")
	t.Logf("CheckIn of the agent's name from the test process: %v", err)

	unload()
	eventually(t, "the name is withdrawn after unload", func() bool {
		s, err := bootstrap.LookUp(context.Background(), name)
		if err == nil {
			s.Close()
		}
		return errors.Is(err, bootstrap.ErrUnknownService)
	})
}
