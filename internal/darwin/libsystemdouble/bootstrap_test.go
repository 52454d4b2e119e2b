//go:build linux

package libsystemdouble

import (
	"strings"
	"testing"

	"github.com/machport/machport/internal/abi"
	"github.com/machport/machport/internal/darwin"
	"github.com/machport/machport/internal/emu"
)

// fakeNamespace records what launchd's namespace was asked and answers with kr.
type fakeNamespace struct {
	kr    int32
	names []string
}

func (f *fakeNamespace) Register(name string, _ uint32, _ bool) int32 {
	f.names = append(f.names, name)
	return f.kr
}

func (f *fakeNamespace) CheckIn(name string) (uint32, int32) {
	f.names = append(f.names, name)
	return 0x1234, f.kr
}

func (f *fakeNamespace) LookUp(name string, _ int) (uint32, int32) {
	f.names = append(f.names, name)
	return 0x5678, f.kr
}

// What launchd decides itself, before and around its namespace: the bootstrap port, the sandbox,
// the MIG copies of the name (cut at NUL and to 127 bytes) and of the right (launchd's send
// right, released when it refuses), and out-parameters written only on success.
func TestLaunchdAroundItsNamespace(t *testing.T) {
	Install()
	ns := &fakeNamespace{}
	SetNamespace(ns)
	t.Cleanup(func() { SetNamespace(nil) })
	bp := ReadUint32(darwin.BootstrapPortAddr)
	if bp != BootstrapPortName {
		t.Fatalf("bootstrap_port is %#x", bp)
	}
	port, kr := emu.Allocate(abi.MACH_PORT_RIGHT_RECEIVE)
	if kr != 0 {
		t.Fatal(kr)
	}
	defer emu.ModRefs(port, abi.MACH_PORT_RIGHT_RECEIVE, -1)
	if kr := emu.InsertRight(port, port, abi.MACH_MSG_TYPE_MAKE_SEND); kr != 0 {
		t.Fatal(kr)
	}
	refs := func() uint32 { n, _ := emu.GetRefs(port, abi.MACH_PORT_RIGHT_SEND); return n }

	if kr := darwin.BootstrapRegister2(0x999, "a", port, 0); kr != abi.MACH_SEND_INVALID_DEST {
		t.Errorf("another bootstrap port: %#x", kr)
	}
	long := strings.Repeat("n", 200)
	ns.kr = abi.BOOTSTRAP_SERVICE_ACTIVE
	if kr := darwin.BootstrapRegister2(bp, long, port, 0); kr != abi.BOOTSTRAP_SERVICE_ACTIVE {
		t.Errorf("register2: %d", kr)
	}
	if got := ns.names[len(ns.names)-1]; got != long[:127] {
		t.Errorf("launchd got a %d-byte name", len(got))
	}
	if refs() != 1 {
		t.Errorf("a refusal left launchd's copy of the send right: %d references", refs())
	}
	if kr := darwin.BootstrapRegister2(bp, "a\x00b", 0x777, 0); kr != abi.MACH_SEND_INVALID_RIGHT {
		t.Errorf("a name that is no send right: %#x", kr)
	}
	if got := ns.names[len(ns.names)-1]; got != long[:127] {
		t.Errorf("launchd was asked about %q", got)
	}

	out := uint32(0xaaaa)
	ns.kr = abi.BOOTSTRAP_UNKNOWN_SERVICE
	if kr := darwin.BootstrapCheckIn(bp, "x\x00y", &out); kr != abi.BOOTSTRAP_UNKNOWN_SERVICE || out != 0xaaaa {
		t.Errorf("check_in: %d, port %#x", kr, out)
	}
	if got := ns.names[len(ns.names)-1]; got != "x" {
		t.Errorf("launchd was asked about %q", got)
	}
	ns.kr = 0
	if kr := darwin.BootstrapLookUp(bp, "z", &out); kr != 0 || out != 0x5678 {
		t.Errorf("look_up: %d, port %#x", kr, out)
	}
	if kr := darwin.BootstrapLookUp2(bp, "z", &out, 0, abi.BOOTSTRAP_PER_PID_SERVICE); kr != abi.BOOTSTRAP_UNKNOWN_SERVICE {
		t.Errorf("a per-PID look-up of pid 0: %d", kr)
	}

	restore := SetEntitlements(&Entitlements{Groups: []string{"group.com.example"}})
	asked := len(ns.names)
	if kr := darwin.BootstrapLookUp(bp, "com.example.outside", &out); kr != abi.BOOTSTRAP_NOT_PRIVILEGED {
		t.Errorf("a sandboxed look-up outside the groups: %d", kr)
	}
	if kr := darwin.BootstrapRegister2(bp, "group.com.example", port, 0); kr != abi.BOOTSTRAP_NOT_PRIVILEGED {
		t.Errorf("registering the group itself: %d", kr)
	}
	restore()
	if len(ns.names) != asked {
		t.Error("launchd asked its namespace about a name the sandbox refused")
	}

	for code, text := range map[int32]string{0: "Success", 1100: "Permission denied", 1101: "Service name already exists",
		1103: "Service name already exists", 1102: "Unknown service name", 1105: "Out of memory", 141: "unknown error code"} {
		if got := darwin.BootstrapStrerror(code); got != text {
			t.Errorf("bootstrap_strerror(%d) = %q", code, got)
		}
	}
}
