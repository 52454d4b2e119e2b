//go:build !darwin || (!machport_publiconly && (!ios || machport_private))

package darwin

// The private bindings: symbols that the iOS SDK declares in no header (bootstrap.h, SecTask.h,
// libproc.h and codesign.h are macOS-only or absent: ios-abi.json, "differences_from_macos"), or
// that are private on macOS too (sandbox_check, csops, bootstrap_register2, bootstrap_look_up2,
// the per-process CFMessagePort calls: "private_prototypes"). App Store review scans a binary
// for such names, so this file, the only place their C names are spelled, is left out of
// public-only builds (mode.go): iOS without -tags machport_private, and macOS with
// -tags machport_publiconly. Their Go variables stay declared (bindings.go) and nil there, and
// the packages that use them answer with a PrivateAPIError before calling one.
// TestPrivateTableIsWhatTheSDKsMakePrivate checks this split against both SDKs' facts.

// PrivateBuild reports whether this build has the private bindings (a constant, so that code
// using them is dropped from public-only builds).
const PrivateBuild = true

// notInFacts is where the prototypes of the bindings the SDK facts lack come from.
const notInFacts = "not in darwin-abi.json; prototype from the macOS SDK's Security/CoreFoundation headers (SecRequirement.h, SecCode.h, CFDictionary.h)"

func init() {
	Funcs = append(Funcs, privateFuncs...)
	VariadicFuncs = append(VariadicFuncs, privateVariadicFuncs...)
	DataSymbols = append(DataSymbols, privateDataSymbols...)
}

// privateFuncs, privateVariadicFuncs and privateDataSymbols are the private entries of Funcs,
// VariadicFuncs and DataSymbols.
var privateFuncs = []Func{
	{Name: "bootstrap_register2", Lib: LibXPC, Fn: &BootstrapRegister2, Optional: true},
	{Name: "bootstrap_look_up", Lib: LibXPC, Fn: &BootstrapLookUp},
	{Name: "bootstrap_look_up2", Lib: LibXPC, Fn: &BootstrapLookUp2, Optional: true},
	{Name: "bootstrap_check_in", Lib: LibXPC, Fn: &BootstrapCheckIn},
	{Name: "bootstrap_strerror", Lib: LibXPC, Fn: &BootstrapStrerror, Optional: true},
	{Name: "csops", Lib: LibKernel, Fn: &Csops, Optional: true},
	{Name: "SecTaskCreateFromSelf", Lib: LibSecurity, Fn: &SecTaskCreateFromSelf},
	{Name: "SecTaskCopyValueForEntitlement", Lib: LibSecurity, Fn: &SecTaskCopyValueForEntitlement},
	{Name: "CFMessagePortCreatePerProcessLocal", Lib: LibCoreFoundation, Fn: &CFMessagePortCreatePerProcessLocal, Optional: true},
	{Name: "CFMessagePortCreatePerProcessRemote", Lib: LibCoreFoundation, Fn: &CFMessagePortCreatePerProcessRemote, Optional: true},
	// Peer identity (package peer): libproc, csops_audittoken and the code-signing calls,
	// which iOS does not declare (SecCode.h and SecRequirement.h are macOS-only).
	{Name: "csops_audittoken", Lib: LibKernel, Fn: &CsopsAudittoken, Optional: true},
	{Name: "proc_pidpath", Lib: LibKernel, Fn: &ProcPidpath, Optional: true},
	{Name: "SecRequirementCreateWithString", Lib: LibSecurity, Fn: &SecRequirementCreateWithString, Optional: true, Unchecked: notInFacts},
	{Name: "SecCodeCopyGuestWithAttributes", Lib: LibSecurity, Fn: &SecCodeCopyGuestWithAttributes, Optional: true, Unchecked: notInFacts},
	{Name: "SecCodeCheckValidity", Lib: LibSecurity, Fn: &SecCodeCheckValidity, Optional: true, Unchecked: notInFacts},
	{Name: "CFDictionaryCreate", Lib: LibCoreFoundation, Fn: &CFDictionaryCreate, Optional: true, Unchecked: notInFacts},
	// Another process's audit token (peer.TokenForPID): task_name_for_pid is declared in macOS's
	// <mach/mach_traps.h> only (bindings.go says where its prototype comes from).
	{Name: "task_name_for_pid", Lib: LibKernel, Fn: &TaskNameForPID, Optional: true, Unchecked: notInFactsTask},
}

var privateVariadicFuncs = []VariadicFunc{
	{Name: "sandbox_check", Lib: LibSandbox, Arm64: &SandboxCheckArm64, Amd64: &SandboxCheckAmd64,
		VarArgs: []string{"const char *"}, Optional: true},
}

var privateDataSymbols = []Data{
	{Name: "bootstrap_port", Lib: LibKernel, Addr: &BootstrapPortAddr, Type: uint32(0)},
	{Name: "SANDBOX_CHECK_NO_REPORT", Lib: LibSandbox, Addr: &SandboxCheckNoReportAddr, Type: uint32(0), Optional: true},
	{Name: "kSecGuestAttributeAudit", Lib: LibSecurity, Addr: &SecGuestAttributeAuditAddr, Type: uintptr(0), Optional: true, Unchecked: notInFacts},
	{Name: "kCFTypeDictionaryKeyCallBacks", Lib: LibCoreFoundation, Addr: &CFTypeDictionaryKeyCallBacksAddr, Type: [6]uintptr{}, Optional: true, Unchecked: notInFacts},
	{Name: "kCFTypeDictionaryValueCallBacks", Lib: LibCoreFoundation, Addr: &CFTypeDictionaryValueCallBacksAddr, Type: [5]uintptr{}, Optional: true, Unchecked: notInFacts},
}

// privateNames lists the C names of the private bindings.
func privateNames() []string {
	var names []string
	for _, f := range privateFuncs {
		names = append(names, f.Name)
	}
	for _, f := range privateVariadicFuncs {
		names = append(names, f.Name)
	}
	for _, d := range privateDataSymbols {
		names = append(names, d.Name)
	}
	return names
}
