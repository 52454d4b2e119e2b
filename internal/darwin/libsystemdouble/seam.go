//go:build linux

package libsystemdouble

import "sync"

// Env is the environment variable that a machport test binary reads in its init: set to 1, the
// binary calls UseDarwinLogic before any test runs, and the children it re-executes for
// cross-process tests inherit it, so both sides run the Darwin logic. Only test files read it:
// no program that uses machport changes its behaviour because of it.
const Env = "MACHPORT_TEST_LIBSYSTEM_DOUBLE"

// The packages with Darwin logic (mach, bootstrap, sandboxcheck) each register, from a
// linux-only file, the switch that makes them use their Darwin logic over this double. Package
// init order puts every switch here before a test binary's own init can call UseDarwinLogic.
var switches struct {
	sync.Mutex
	fns  []func()
	used bool
}

// OnUse registers fn, which switches one package from the Linux emulation to its Darwin logic
// over this double. A package calls it from its init; fn runs only if UseDarwinLogic is called.
func OnUse(fn func()) {
	switches.Lock()
	defer switches.Unlock()
	switches.fns = append(switches.fns, fn)
}

// UseDarwinLogic installs the double and switches every registered package to its Darwin logic
// for the rest of the process. Call it from a test binary's init, before anything makes a port:
// rights made by the emulation's adapter and by the Darwin logic do not mix. Later calls do
// nothing. It is internal on purpose: only machport's own tests can reach it.
func UseDarwinLogic() {
	switches.Lock()
	defer switches.Unlock()
	if switches.used {
		return
	}
	switches.used = true
	Install()
	for _, fn := range switches.fns {
		fn()
	}
}

// InUse reports whether UseDarwinLogic has run in this process.
func InUse() bool {
	switches.Lock()
	defer switches.Unlock()
	return switches.used
}
