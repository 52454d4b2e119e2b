//go:build darwin && !ios

package peer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machport/machport/mach"
	"github.com/stretchr/testify/require"
)

// A code-signing requirement that does not parse is an error at construction; one that parses
// is checked against this process's own token (a pid and version from the kernel are needed:
// csops_audittoken and Security check the whole token, so a token made up here fails as gone).
func TestCodeSigningRequirementParses(t *testing.T) {
	_, err := New(CodeSigning(`identifier "com.example" and and`))
	require.ErrorIs(t, err, ErrInvalidRequirement)
	r, err := New(CodeSigning(`identifier "com.example.nobody"`))
	require.NoError(t, err)
	made := mach.AuditToken{uint32(os.Getuid()), uint32(os.Geteuid()), 0, 0, 0, uint32(os.Getpid()), 0, 0}
	require.Error(t, r.Check(made))
}

// envSignedChild, set to the hex cdhash of the signed copy of the test binary, makes
// TestCodeSigningCDHashOfSignedTestBinary run its child's half in that copy.
const envSignedChild = "MACHPORT_TEST_PEER_SIGNED_CDHASH"

// The test binary, signed ad hoc with `codesign -s -`, passes a cdhash requirement built from its
// own code directory and fails one with another hash. The parent signs a copy of the test
// binary, reads its CDHash from `codesign -dvvv`, and runs the copy with this test alone; the
// child learns its own audit token (with the kernel's pid version) from a message it sends
// itself, and checks both requirements against it through Security. Not run on macOS yet.
func TestCodeSigningCDHashOfSignedTestBinary(t *testing.T) {
	if want := os.Getenv(envSignedChild); want != "" {
		signedChild(t, want)
		return
	}
	self, err := os.Executable()
	require.NoError(t, err)
	bin, err := os.ReadFile(self)
	require.NoError(t, err)
	signed := filepath.Join(t.TempDir(), "peer.test")
	require.NoError(t, os.WriteFile(signed, bin, 0o755))
	out, err := exec.Command("codesign", "-s", "-", "-f", signed).CombinedOutput()
	require.NoError(t, err, "codesign -s -: %s", out)
	out, err = exec.Command("codesign", "-dvvv", signed).CombinedOutput()
	require.NoError(t, err, "codesign -dvvv: %s", out)
	var hash string
	for line := range strings.Lines(string(out)) {
		if h, ok := strings.CutPrefix(strings.TrimSpace(line), "CDHash="); ok {
			hash = h
		}
	}
	require.Regexp(t, `^[0-9a-f]{40}$`, hash, "no CDHash in: %s", out)
	child := exec.Command(signed, "-test.run=^TestCodeSigningCDHashOfSignedTestBinary$", "-test.v", "-test.count=1")
	child.Env = append(os.Environ(), envSignedChild+"="+hash)
	out, err = child.CombinedOutput()
	require.NoError(t, err, "the signed child: %s", out)
	require.Contains(t, string(out), "--- PASS: TestCodeSigningCDHashOfSignedTestBinary", "%s", out)
}

// signedChild is the signed copy's half: its own token passes `cdhash H"want"` and fails a
// requirement on another hash, with ErrCodeSigningFailed.
func signedChild(t *testing.T, want string) {
	tok := ownToken(t)
	require.Equal(t, os.Getpid(), tok.PID())
	other := []byte(want)
	other[0] = "01"[boolInt(other[0] == '0')]
	for _, tc := range []struct {
		hash string
		ok   bool
	}{{want, true}, {string(other), false}} {
		r, err := New(CodeSigning(`cdhash H"` + tc.hash + `"`))
		require.NoError(t, err)
		err = r.Check(tok)
		if tc.ok {
			require.NoError(t, err, "cdhash %s", tc.hash)
		} else {
			require.ErrorIs(t, err, ErrCodeSigningFailed, "cdhash %s", tc.hash)
		}
		require.NoError(t, r.Close())
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// ownToken returns this process's audit token as the kernel writes it into a message's trailer:
// a message sent to a port of its own.
func ownToken(t *testing.T) mach.AuditToken {
	port, err := mach.NewPort(mach.PortOptions{QueueLimit: 1})
	require.NoError(t, err)
	defer port.Close()
	send, err := port.MakeSend()
	require.NoError(t, err)
	defer send.Close()
	ctx := context.Background()
	require.NoError(t, mach.Send(ctx, &mach.Message{Remote: mach.CopySendOf(send), ID: 1}))
	var in mach.Message
	require.NoError(t, mach.Receive(ctx, port, &in))
	defer in.Destroy()
	return in.Trailer.Audit
}
