//go:build !darwin || (!machport_publiconly && (!ios || machport_private))

package darwin

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/machport/machport/internal/abitest"
	"github.com/stretchr/testify/require"
)

// The tests of the private table (bindings_private.go), which public-only builds leave out.

// App Store review scans a binary for private symbol names. A public-only build must contain
// none of the private table's names: the program of testdata/publiconlyprog uses every library
// package and is cross-built for darwin/arm64 (CGO_ENABLED=0) with -tags machport_publiconly,
// then searched for each name. The default build must contain every one of them, so that the
// search can fail. (GOOS=ios cannot be built here: purego needs cgo there. Its public-only
// mode is the same build constraint, !machport_private on ios.)
func TestPublicOnlyBinaryHasNoPrivateNames(t *testing.T) {
	names := privateNames()
	require.NotEmpty(t, names)
	dir := t.TempDir()
	for _, c := range []struct {
		tags        string
		wantPresent bool
	}{{"", true}, {TagPublicOnly, false}} {
		t.Run("tags="+c.tags, func(t *testing.T) {
			out := filepath.Join(dir, "prog"+c.tags)
			cmd := exec.Command("go", "build", "-tags", c.tags, "-o", out, "./testdata/publiconlyprog")
			cmd.Env = append(os.Environ(), "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0")
			msg, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", msg)
			bin, err := os.ReadFile(out)
			require.NoError(t, err)
			for _, name := range names {
				require.Equal(t, c.wantPresent, bytes.Contains(bin, []byte(name)), "%q in the binary built with tags %q", name, c.tags)
			}
		})
	}
}

// publicButPrivateTable lists the bindings that are public API on both systems yet kept in the
// private table, and why.
var publicButPrivateTable = map[string]string{
	"bootstrap_port":                  "declared on iOS (mach/mach_init.h), but only the bootstrap calls use it",
	"CFDictionaryCreate":              "only peer's code-signing check (SecCode, macOS-only API) uses it",
	"kCFTypeDictionaryKeyCallBacks":   "only peer's code-signing check uses it",
	"kCFTypeDictionaryValueCallBacks": "only peer's code-signing check uses it",
}

// publicButNotInFacts lists the public bindings that neither SDK's facts hold (so the facts
// cannot say they are declared on iOS), and where they are declared.
var publicButNotInFacts = map[string]string{
	"mach_port_peek": "a MIG routine of <mach/mach_port.h> (xnu mach_port.defs), a public header on macOS and iOS; the facts were made without it",
	"task_info":      "<mach/task.h> on macOS and iOS; the facts export it without a prototype",
}

// The private table (bindings_private.go) holds exactly the bindings that are private on macOS
// (darwin-abi.json's private_prototypes), or not declared by the iOS SDK (ios-abi.json's
// bindings_check and prototypes_not_in_sdk_headers, or absent from its symbols: SecCode), plus
// the public ones listed above; every other binding is public on both.
func TestPrivateTableIsWhatTheSDKsMakePrivate(t *testing.T) {
	ios := iosFacts(t)
	mac, err := abitest.Load()
	require.NoError(t, err)
	private := map[string]bool{}
	for _, name := range privateNames() {
		private[name] = true
	}
	for name := range bindingNames() {
		_, macPrivate := mac.PrivatePrototypes[name]
		iosUndeclared := slices.Contains(ios.NotInSDKHeaders, name) || ios.Symbol(name) == nil
		if c := ios.BindingsCheck[name]; c != nil {
			iosUndeclared = iosUndeclared || !c.DeclaredInIOSHeader
		}
		if why := publicButNotInFacts[name]; why != "" {
			require.False(t, private[name], "%s: %s", name, why)
			continue
		}
		want := macPrivate || iosUndeclared || publicButPrivateTable[name] != ""
		require.Equal(t, want, private[name], "%s: private on macOS %v, undeclared on iOS %v", name, macPrivate, iosUndeclared)
	}
}
