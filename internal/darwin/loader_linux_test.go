//go:build linux

package darwin_test

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"sync"
	"syscall"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/machport/machport/sandboxcheck"
	"github.com/stretchr/testify/require"
)

// The loader (loader.go) runs here over the libSystem double's recording linker, as it runs over
// purego on macOS: these tests see which images it opens, when, and from which thread.

// useDouble gives the loader a fresh double linker: nothing opened, nothing bound.
func useDouble(t *testing.T) *libsystemdouble.Linker {
	t.Helper()
	l := libsystemdouble.NewLinker()
	darwin.SetLinker(l)
	t.Cleanup(func() { darwin.SetLinker(nil) })
	return l
}

// bound reports, for every binding of the tables whose symbol lives in lib's image, whether its
// variable is set (for a variadic one, this architecture's variant).
func bound(image string) map[string]bool {
	out := map[string]bool{}
	for _, f := range darwin.Funcs {
		if darwin.ImageOf(f.Lib) == image {
			out[f.Name] = !reflect.ValueOf(f.Fn).Elem().IsNil()
		}
	}
	for _, f := range darwin.VariadicFuncs {
		if darwin.ImageOf(f.Lib) == image {
			fn := f.Amd64
			if runtime.GOARCH == "arm64" {
				fn = f.Arm64
			}
			out[f.Name] = !reflect.ValueOf(fn).Elem().IsNil()
		}
	}
	for _, d := range darwin.DataSymbols {
		if darwin.ImageOf(d.Lib) == image {
			out[d.Name] = *d.Addr != 0
		}
	}
	return out
}

func allTrue(t *testing.T, m map[string]bool, what string) {
	t.Helper()
	require.NotEmpty(t, m, what)
	for name, ok := range m {
		require.True(t, ok, "%s: %s", what, name)
	}
}

func allFalse(t *testing.T, m map[string]bool, what string) {
	t.Helper()
	require.NotEmpty(t, m, what)
	for name, ok := range m {
		require.False(t, ok, "%s: %s", what, name)
	}
}

// What mach, bootstrap and sandboxcheck's name rule call (Load: see TestLoadersTheCallersUse)
// opens libSystem alone and binds all of libSystem's bindings, to the double's functions and
// data: a Mach call through a bound variable reaches the double, and mach_task_self_ is read
// through the address dlsym gave. No framework is opened, and none of their variables is set.
func TestLoadOpensLibSystemAlone(t *testing.T) {
	l := useDouble(t)
	require.NoError(t, darwin.Load())
	require.NoError(t, sandboxcheck.ValidateName("com.example.loader"))
	require.NoError(t, darwin.Load())
	require.Equal(t, []string{darwin.LibSystem}, l.Opened())

	allTrue(t, bound(darwin.LibSystem), "bound from libSystem")
	allFalse(t, bound(darwin.LibCoreFoundation), "CoreFoundation binding set by Load")
	allFalse(t, bound(darwin.LibSecurity), "Security binding set by Load")

	require.Equal(t, uint32(libsystemdouble.TaskSelfName), darwin.TaskSelf())
	var name uint32
	require.Equal(t, int32(abi.KERN_SUCCESS), darwin.MachPortAllocate(darwin.TaskSelf(), abi.MACH_PORT_RIGHT_RECEIVE, &name))
	var ptype uint32
	require.Equal(t, int32(abi.KERN_SUCCESS), darwin.MachPortType(darwin.TaskSelf(), name, &ptype))
	require.Equal(t, uint32(abi.MACH_PORT_TYPE_RECEIVE), ptype)
	require.Equal(t, int32(abi.KERN_SUCCESS), darwin.MachPortModRefs(darwin.TaskSelf(), name, abi.MACH_PORT_RIGHT_RECEIVE, -1))
}

// CoreFoundation is opened at its first use, once however many goroutines ask at the same time,
// after libSystem, and without Security.
func TestCoreFoundationOpenedOnceAtFirstUse(t *testing.T) {
	l := useDouble(t)
	require.NoError(t, darwin.Load())
	require.Equal(t, []string{darwin.LibSystem}, l.Opened())

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = darwin.LoadCoreFoundation() })
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, darwin.LoadCoreFoundation())
	require.Equal(t, []string{darwin.LibSystem, darwin.LibCoreFoundation}, l.Opened())
	allTrue(t, bound(darwin.LibCoreFoundation), "bound from CoreFoundation")
	allFalse(t, bound(darwin.LibSecurity), "Security binding set by LoadCoreFoundation")
	mode := darwin.ReadUintptr(darwin.CFRunLoopDefaultModeAddr)
	require.NotZero(t, mode, "kCFRunLoopDefaultMode read through the address dlsym gave")
	require.Equal(t, darwin.CFStringGetTypeID(), darwin.CFGetTypeID(mode), "the double's kCFRunLoopDefaultMode is a CFString")

	// A first use of CF before anything else opens libSystem first.
	l = useDouble(t)
	require.NoError(t, darwin.LoadCoreFoundation())
	require.Equal(t, []string{darwin.LibSystem, darwin.LibCoreFoundation}, l.Opened())
}

// Security is opened only by the entitlement path's loader, once, after CoreFoundation (its
// SecTask results are CF objects).
func TestSecurityOpenedOnlyForEntitlements(t *testing.T) {
	l := useDouble(t)
	require.NoError(t, darwin.Load())
	require.NoError(t, darwin.LoadCoreFoundation())
	require.NotContains(t, l.Opened(), darwin.LibSecurity)
	allFalse(t, bound(darwin.LibSecurity), "Security binding set before LoadSecurity")

	require.NoError(t, darwin.LoadSecurity())
	require.NoError(t, darwin.LoadSecurity())
	require.Equal(t, []string{darwin.LibSystem, darwin.LibCoreFoundation, darwin.LibSecurity}, l.Opened())
	allTrue(t, bound(darwin.LibSecurity), "bound from Security")

	l = useDouble(t)
	require.NoError(t, darwin.LoadSecurity())
	require.Equal(t, []string{darwin.LibSystem, darwin.LibCoreFoundation, darwin.LibSecurity}, l.Opened())
}

// A missing optional symbol leaves its variable nil and the image loads; a missing required one
// fails its image's load, naming the symbol and the image, with none of that image's variables
// set, while the other images are unaffected; the failure is the answer from then on.
func TestMissingSymbols(t *testing.T) {
	t.Run("optional function", func(t *testing.T) {
		l := useDouble(t)
		l.Hide("CFMessagePortCreatePerProcessLocal")
		require.NoError(t, darwin.LoadCoreFoundation())
		require.Nil(t, darwin.CFMessagePortCreatePerProcessLocal)
		require.NotNil(t, darwin.CFMessagePortCreateLocal)
	})
	t.Run("optional data", func(t *testing.T) {
		l := useDouble(t)
		l.Hide("SANDBOX_CHECK_NO_REPORT")
		require.NoError(t, darwin.Load())
		require.Zero(t, darwin.SandboxCheckNoReportAddr)
		require.NotNil(t, darwin.MachMsg)
	})
	t.Run("optional variadic", func(t *testing.T) {
		l := useDouble(t)
		l.Hide("sandbox_check")
		require.NoError(t, darwin.Load())
		require.Nil(t, darwin.SandboxCheckArm64, "a missing sandbox_check leaves both variants nil")
		require.Nil(t, darwin.SandboxCheckAmd64)
	})
	t.Run("required in CoreFoundation", func(t *testing.T) {
		l := useDouble(t)
		l.Hide("CFRelease")
		err := darwin.LoadCoreFoundation()
		require.ErrorIs(t, err, darwin.ErrNoSymbol)
		require.ErrorContains(t, err, darwin.LibCoreFoundation+" lacks CFRelease (dlsym:")
		allFalse(t, bound(darwin.LibCoreFoundation), "CoreFoundation binding set by a failed load")
		require.Equal(t, err, darwin.LoadCoreFoundation(), "the failure is the answer from then on")
		require.ErrorIs(t, darwin.LoadSecurity(), darwin.ErrNoSymbol, "Security needs CoreFoundation")
		require.NotContains(t, l.Opened(), darwin.LibSecurity)
		require.NoError(t, darwin.Load(), "libSystem does not need CoreFoundation")
		allTrue(t, bound(darwin.LibSystem), "bound from libSystem")
	})
	t.Run("required in libSystem", func(t *testing.T) {
		l := useDouble(t)
		l.Hide("mach_msg")
		l.Hide("bootstrap_port")
		err := darwin.Load()
		require.ErrorIs(t, err, darwin.ErrNoSymbol)
		require.ErrorContains(t, err, darwin.LibSystem+" lacks mach_msg, bootstrap_port (dlsym:")
		allFalse(t, bound(darwin.LibSystem), "libSystem binding set by a failed load")
		require.Zero(t, darwin.TaskSelf())
		require.ErrorIs(t, darwin.LoadCoreFoundation(), darwin.ErrNoSymbol)
		require.Equal(t, []string{darwin.LibSystem}, l.Opened())
	})
}

// An image that cannot be opened fails its loader with ErrNoImage and dlopen's words, and
// leaves the others working.
func TestImageThatCannotBeOpened(t *testing.T) {
	l := useDouble(t)
	l.FailOpen(darwin.LibSecurity, errors.New("dlopen(Security, 0x000A): image not found"))
	err := darwin.LoadSecurity()
	require.ErrorIs(t, err, darwin.ErrNoImage)
	require.ErrorContains(t, err, "image not found")
	require.NoError(t, darwin.LoadCoreFoundation())
	allFalse(t, bound(darwin.LibSecurity), "Security binding set though it did not open")
}

// Without a linker (Linux, iOS), every loader says the platform is unsupported.
func TestNoLinkerIsUnsupported(t *testing.T) {
	darwin.SetLinker(nil)
	for _, load := range []func() error{darwin.Load, darwin.LoadCoreFoundation, darwin.LoadSecurity} {
		require.ErrorIs(t, load(), errors.ErrUnsupported)
	}
	require.Zero(t, darwin.TaskSelf())
	require.Zero(t, darwin.BootstrapPort())
}

// CoreFoundation's initializer records the thread that opens it as CF's main thread. A caller
// locked to its thread ends that thread when it exits, so the framework is opened on another
// thread, one that Go keeps for the life of the process.
func TestFrameworkOpenedOnALastingThread(t *testing.T) {
	l := useDouble(t)
	caller := make(chan int)
	errs := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: Go ends this thread when the goroutine exits
		errs <- darwin.LoadCoreFoundation()
		caller <- syscall.Gettid()
	}()
	callerTid := <-caller
	require.NoError(t, <-errs)
	opens := l.Opens()
	require.Len(t, opens, 2)
	require.Equal(t, darwin.LibSystem, opens[0].Path)
	require.Equal(t, callerTid, opens[0].Thread, "libSystem, whose initializers ran at launch, opens on the caller's thread")
	require.Equal(t, darwin.LibCoreFoundation, opens[1].Path)
	require.NotEqual(t, callerTid, opens[1].Thread, "CoreFoundation opened on the caller's locked thread")
	_, err := os.Stat(fmt.Sprintf("/proc/self/task/%d", opens[1].Thread))
	require.NoError(t, err, "the thread CoreFoundation names as its main thread is gone")
}

// On iOS the loader opens the flat framework paths (ios-abi.json's install names), on macOS the
// Versions/A ones: each system loads with the other's paths failing to open, and binds every
// binding of all three images.
func TestFrameworkPathsPerOS(t *testing.T) {
	for _, c := range []struct {
		os           darwin.OS
		cf, security string
		other        []string // the other system's paths, which must not be opened
	}{
		{darwin.MacOS, darwin.LibCoreFoundation, darwin.LibSecurity, []string{darwin.IOSLibCoreFoundation, darwin.IOSLibSecurity}},
		{darwin.IOS, darwin.IOSLibCoreFoundation, darwin.IOSLibSecurity, []string{darwin.LibCoreFoundation, darwin.LibSecurity}},
	} {
		t.Run(c.os.String(), func(t *testing.T) {
			l := useDouble(t)
			darwin.SetOS(c.os)
			t.Cleanup(func() { darwin.SetOS(darwin.HostOS()) })
			for _, p := range c.other {
				l.FailOpen(p, errors.New("dlopen: image not found"))
			}
			require.NoError(t, darwin.LoadSecurity())
			require.Equal(t, []string{darwin.LibSystem, c.cf, c.security}, l.Opened())
			require.Equal(t, c.cf, darwin.ImageOf(darwin.LibCoreFoundation))
			require.Equal(t, c.security, darwin.ImageOf(darwin.LibSecurity))
			allTrue(t, bound(darwin.ImageOf(darwin.LibSystem)), "bound from libSystem")
			allTrue(t, bound(c.cf), "bound from CoreFoundation")
			allTrue(t, bound(c.security), "bound from Security")
		})
	}
	require.Equal(t, darwin.MacOS, darwin.HostOS(), "a Linux test binary loads for macOS unless told")
}
