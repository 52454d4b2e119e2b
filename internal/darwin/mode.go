package darwin

import (
	"errors"
	"fmt"
)

// The two modes of a Darwin build.
//
//   - Private API (the default on macOS; on iOS with -tags machport_private): every binding of
//     the tables, including bootstrap_*, sandbox_check, csops, SecTask and libproc.
//   - Public API only (the default on iOS; on macOS with -tags machport_publiconly, for helpers
//     inside a Mac App Store app): bindings_private.go is not compiled, so the private symbols'
//     names are nowhere in the binary, which is what App Store review scans for. mach works
//     (its calls are public); cfmessageport goes through CoreFoundation's public CFMessagePort
//     functions; bootstrap's register, check-in and look-up and sandboxcheck's live queries
//     return a PrivateAPIError.
//
// On Linux the private table is always compiled (the tests run the Darwin logic of both modes
// over the libSystem double); PublicOnly is the seam that selects the mode there.

// Build tags that select the mode.
const (
	// TagPrivate enables the private bindings on iOS.
	TagPrivate = "machport_private"
	// TagPublicOnly leaves the private bindings out on macOS.
	TagPublicOnly = "machport_publiconly"
)

// PublicOnly reports whether this process runs in public-API-only mode: true when the build left
// the private bindings out. Tests on Linux set it to run the public-only paths; setting it false
// in a public-only build does not bring the private bindings back (their variables stay nil).
var PublicOnly = !PrivateBuild

// PrivateAPIError is the answer of a call that needs Apple private API in public-only mode. It
// wraps errors.ErrUnsupported. It names the Go call, never the C symbol, so that the symbol's
// name stays out of public-only binaries.
type PrivateAPIError struct {
	Op string // the Go call, such as "bootstrap.Register"
}

// Error says why the call is unavailable and which build tag changes that.
func (e *PrivateAPIError) Error() string {
	how := fmt.Sprintf("on iOS, build with -tags %s to enable it (App Store review rejects apps that use private API)", TagPrivate)
	if HostOS() == MacOS {
		how = fmt.Sprintf("on macOS it is available unless the build uses -tags %s (as for a Mac App Store helper)", TagPublicOnly)
	}
	return fmt.Sprintf("%s needs Apple private API, which this public-API-only build leaves out: %s", e.Op, how)
}

// Unwrap returns errors.ErrUnsupported.
func (e *PrivateAPIError) Unwrap() error { return errors.ErrUnsupported }

// RequirePrivate returns a PrivateAPIError for op in public-only mode, else nil.
func RequirePrivate(op string) error {
	if PublicOnly {
		return &PrivateAPIError{Op: op}
	}
	return nil
}
