//go:build linux

package sandboxcheck

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/internal/darwin/libsystemdouble"
	"github.com/stretchr/testify/require"
)

// useDouble makes this package ask the real sandbox's Darwin logic (policy_libsystem.go) over
// the libSystem double, through the sandbox_check binding of arch, until the test ends.
func useDouble(t *testing.T, arch string) {
	t.Helper()
	libsystemdouble.Install()
	old := platform
	platform = doubleSandbox(arch)
	t.Cleanup(func() {
		platform = old
		libsystemdouble.Reset()
	})
}

// entitle gives the double's process the code signature e until the test ends.
func entitle(t *testing.T, e *libsystemdouble.Entitlements) {
	t.Helper()
	t.Cleanup(libsystemdouble.SetEntitlements(e))
}

// The Darwin logic reads what the process's code signature and sandbox say, through both
// variadic ABIs of sandbox_check (the arm64 binding passes the name in the first stack slot,
// where the double reads it; the amd64 one fourth), and through every shape of the
// entitlement: none, a CFArray read back from the csops blob, a lone CFString. Every CF object
// it makes is released, and no probe is reported as a violation.
func TestDarwinSandboxThroughDouble(t *testing.T) {
	const g1, g2 = "group.com.example.app", "ABCDE12345.com.example.shared"
	cases := []struct {
		name       string
		ent        *libsystemdouble.Entitlements
		sandboxed  bool
		groups     []string
		registerOK map[string]bool // name -> what Allowed(MachRegister) says
		checkErr   error           // Check(MachRegister, "com.example.outside")
	}{
		{name: "unsandboxed", ent: &libsystemdouble.Entitlements{}, sandboxed: false,
			registerOK: map[string]bool{"com.example.outside": true, g1 + ".worker": true}},
		{name: "two groups", ent: &libsystemdouble.Entitlements{Groups: []string{g1, g2}}, sandboxed: true,
			groups:     []string{g1, g2},
			registerOK: map[string]bool{"com.example.outside": false, g1 + ".worker": true, g2 + ".x": true, g1: false},
			checkErr:   ErrOutsideGroups},
		{name: "a lone string", ent: &libsystemdouble.Entitlements{Groups: []string{g1}, LoneString: true}, sandboxed: true,
			groups:     []string{g1},
			registerOK: map[string]bool{"com.example.outside": false, g1 + ".worker": true},
			checkErr:   ErrOutsideGroups},
		{name: "groups in the environment", sandboxed: true, groups: []string{g2},
			registerOK: map[string]bool{g2 + ".y": true, g1 + ".y": false}, checkErr: ErrOutsideGroups},
	}
	for _, arch := range []string{"arm64", "amd64"} {
		for _, tc := range cases {
			t.Run(arch+"/"+tc.name, func(t *testing.T) {
				useDouble(t, arch)
				t.Setenv(EnvAppGroups, g2)
				if tc.ent != nil {
					entitle(t, tc.ent)
				}
				objects, reported := libsystemdouble.CFObjects(), libsystemdouble.Reported()

				sandboxed, err := Sandboxed()
				require.NoError(t, err)
				require.Equal(t, tc.sandboxed, sandboxed)
				groups, err := ApplicationGroups()
				require.NoError(t, err)
				require.Equal(t, tc.groups, groups)
				for name, ok := range tc.registerOK {
					got, err := Allowed(MachRegister, name)
					require.NoError(t, err)
					require.Equal(t, ok, got, "register %q", name)
					got, err = AllowedPerPID(MachRegister, name)
					require.NoError(t, err)
					require.Equal(t, ok, got, "register per-PID %q", name)
					got, err = Allowed(MachLookUp, name)
					require.NoError(t, err)
					require.Equal(t, ok, got, "look up %q", name)
				}
				err = Check(MachRegister, "com.example.outside")
				if tc.checkErr != nil {
					require.ErrorIs(t, err, tc.checkErr)
				} else {
					require.NoError(t, err)
				}
				require.NoError(t, Check(MachLookUp, "com.example.outside"),
					"on macOS the group rule governs mach-register only")

				require.Equal(t, objects, libsystemdouble.CFObjects(), "every CF object released")
				require.Equal(t, reported, libsystemdouble.Reported(), "probes pass SANDBOX_CHECK_NO_REPORT")
			})
		}
	}
}

// When sandbox_check, csops or SecTask fail, or the blob is malformed, each question fails with
// the cause, and leaves no CF object behind.
func TestDarwinSandboxFaultsThroughDouble(t *testing.T) {
	const group = "group.com.example.app"
	badBlob := binary.BigEndian.AppendUint32(nil, 0xfade7171)
	badBlob = binary.BigEndian.AppendUint32(badBlob, 8+7)
	badBlob = append(badBlob, "<plist>"...)
	cases := []struct {
		name     string
		faults   []libsystemdouble.Fault
		blob     []byte
		sandbox  string // the error of Sandboxed and Allowed, "" for none
		groups   string // the error of ApplicationGroups, "" for none
		groupsIs error
	}{
		{name: "sandbox_check fails", faults: []libsystemdouble.Fault{{Call: "sandbox_check", Code: -1, Count: 100}},
			sandbox: "sandbox_check failed (-1)"},
		{name: "csops fails to say the length", faults: []libsystemdouble.Fault{{Call: "csops", Code: -1, Count: 100}},
			groups: "malformed entitlements blob", groupsIs: ErrBadEntitlements},
		{name: "csops fails to copy the blob", faults: []libsystemdouble.Fault{{Call: "csops", Code: 0, Count: 0}},
			groups: "csops(CS_OPS_ENTITLEMENTS_BLOB) failed"},
		{name: "a malformed blob", blob: badBlob, groups: "malformed entitlements blob", groupsIs: ErrBadEntitlements},
		{name: "SecTaskCopyValueForEntitlement fails",
			faults: []libsystemdouble.Fault{{Call: "SecTaskCopyValueForEntitlement", Code: 1, Count: 100}},
			groups: "SecTaskCopyValueForEntitlement(com.apple.security.application-groups) failed"},
		{name: "SecTaskCreateFromSelf fails", faults: []libsystemdouble.Fault{{Call: "SecTaskCreateFromSelf", Code: 1, Count: 100}},
			groups: "SecTaskCreateFromSelf returned NULL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			useDouble(t, "arm64")
			entitle(t, &libsystemdouble.Entitlements{Groups: []string{group}, Blob: tc.blob})
			if tc.name == "csops fails to copy the blob" {
				// Each first call, which learns the length, works; the second fails.
				var failNext func()
				failNext = func() {
					libsystemdouble.Inject(libsystemdouble.Fault{Call: "csops", Code: -1})
					libsystemdouble.After("csops", 0, failNext)
				}
				libsystemdouble.After("csops", 0, failNext)
			}
			for _, f := range tc.faults {
				if f.Count > 0 {
					libsystemdouble.Inject(f)
				}
			}
			objects := libsystemdouble.CFObjects()

			sandboxed, err := Sandboxed()
			_, aerr := Allowed(MachRegister, group+".x")
			if tc.sandbox != "" {
				require.ErrorContains(t, err, tc.sandbox)
				require.ErrorContains(t, aerr, "sandbox_check(mach-register, global name")
			} else {
				require.NoError(t, err)
				require.NoError(t, aerr)
				require.True(t, sandboxed)
			}
			_, err = ApplicationGroups()
			if tc.groups != "" {
				require.ErrorContains(t, err, tc.groups)
				if tc.groupsIs != nil {
					require.ErrorIs(t, err, tc.groupsIs)
				}
				// Check cannot say which rule a name breaks: launchd decides, without a reason.
				require.NoError(t, Check(MachRegister, "com.example.outside"))
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, objects, libsystemdouble.CFObjects(), "every CF object released")
		})
	}
}

// Where a symbol is missing, as on a macOS without the private sandbox SPI or without
// SANDBOX_CHECK_NO_REPORT, the questions say so (or, for the flag, probe without it).
func TestDarwinSandboxMissingSymbolsThroughDouble(t *testing.T) {
	useDouble(t, "amd64")
	entitle(t, &libsystemdouble.Entitlements{Groups: []string{"group.com.example.app"}})

	addr := darwin.SandboxCheckNoReportAddr
	darwin.SandboxCheckNoReportAddr = 0
	reported := libsystemdouble.Reported()
	ok, err := Allowed(MachRegister, "com.example.outside")
	darwin.SandboxCheckNoReportAddr = addr
	require.NoError(t, err)
	require.False(t, ok)
	require.Equal(t, reported+1, libsystemdouble.Reported(), "without the flag a denied probe is a violation")

	fn := darwin.SandboxCheckAmd64
	darwin.SandboxCheckAmd64 = nil
	_, err = Sandboxed()
	require.ErrorIs(t, err, ErrNoSandboxSPI)
	_, err = Allowed(MachLookUp, "com.example.x")
	darwin.SandboxCheckAmd64 = fn
	require.ErrorIs(t, err, ErrNoSandboxSPI)

	csops := darwin.Csops
	darwin.Csops = nil
	_, err = ApplicationGroups()
	darwin.Csops = csops
	require.ErrorIs(t, err, errors.ErrUnsupported)

	release := darwin.CFRelease
	darwin.CFRelease = nil
	_, err = ApplicationGroups()
	darwin.CFRelease = release
	require.ErrorIs(t, err, errors.ErrUnsupported)

	_, err = Allowed(MachRegister, "bad\x00name")
	require.ErrorIs(t, err, ErrNameHasNUL)

	require.ErrorIs(t, SetApplicationGroups("group.com.example.app"), errors.ErrUnsupported,
		"under the Darwin logic the code signature decides, as on macOS")
}
