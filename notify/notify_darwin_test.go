//go:build darwin && !ios

package notify_test

// Against the real notifyd, on macOS runners only (here they are compiled for darwin): the
// system's notifyutil posts and watches, and CoreFoundation's Darwin notify center posts. The
// workflow's darwin-only job lists them.

import (
	"os/exec"
	"testing"
	"time"

	"github.com/ebitengine/purego"
	"github.com/stretchr/testify/require"

	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/notify"
)

// notifyutil -p NAME posts; the Go subscription receives it.
func TestNotifyutilPostReachesGo(t *testing.T) {
	name := uniqueName(t)
	sub, err := notify.Watch(ctxFor(t), name)
	require.NoError(t, err)
	defer sub.Cancel()
	out, err := exec.Command("notifyutil", "-p", name).CombinedOutput()
	require.NoError(t, err, "%s", out)
	select {
	case d := <-sub.C():
		require.Equal(t, name, d.Name)
	case <-ctxFor(t).Done():
		t.Fatal("notifyutil's post did not arrive")
	}
}

// notifyutil -1 NAME waits for one notification and exits; Go posts until it has (notifyutil
// may not have registered yet when the first post is made).
func TestGoPostReachesNotifyutil(t *testing.T) {
	name := uniqueName(t)
	ctx := ctxFor(t)
	cmd := exec.CommandContext(ctx, "notifyutil", "-1", name)
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		require.NoError(t, notify.Post(name))
		select {
		case err := <-done:
			require.NoError(t, err, "notifyutil -1 exits 0 once it has been notified")
			return
		case <-tick.C:
		case <-ctx.Done():
			t.Fatal("notifyutil -1 saw no post")
		}
	}
}

// CFNotificationCenterPostNotification on CFNotificationCenterGetDarwinNotifyCenter posts
// through notifyd; the Go subscription receives it. (The two CF calls are bound here, for this
// test only.)
func TestCFDarwinNotifyCenterPostReachesGo(t *testing.T) {
	require.NoError(t, darwin.LoadCoreFoundation())
	cf, err := purego.Dlopen(darwin.ImageOf(darwin.LibCoreFoundation), purego.RTLD_NOW|purego.RTLD_GLOBAL)
	require.NoError(t, err)
	var getDarwinCenter func() uintptr
	var post func(center, name, object, userInfo uintptr, deliverImmediately bool)
	purego.RegisterLibFunc(&getDarwinCenter, cf, "CFNotificationCenterGetDarwinNotifyCenter")
	purego.RegisterLibFunc(&post, cf, "CFNotificationCenterPostNotification")

	name := uniqueName(t)
	sub, err := notify.Watch(ctxFor(t), name)
	require.NoError(t, err)
	defer sub.Cancel()
	cfName := darwin.CFStringCreateWithCString(0, name, darwin.CFStringEncodingUTF8)
	require.NotZero(t, cfName)
	defer darwin.CFRelease(cfName)
	post(getDarwinCenter(), cfName, 0, 0, true)
	select {
	case d := <-sub.C():
		require.Equal(t, name, d.Name)
	case <-ctxFor(t).Done():
		t.Fatal("CF's post did not arrive")
	}
}
