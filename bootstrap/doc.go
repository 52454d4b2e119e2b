// Package bootstrap registers and looks up Mach service names in launchd's bootstrap namespace.
//
// Inside the App Sandbox a process may register only names that begin with one of its
// application-group identifiers and a period ("group.com.example.app.worker"); launchd refuses
// any other name with BOOTSTRAP_NOT_PRIVILEGED (1100). This package checks that rule before it
// asks launchd, so a refusal says which rule broke (errors.As to *sandboxcheck.NameError) while
// still matching ErrNotPrivileged with errors.Is.
//
// Register publishes a receive right under a name (bootstrap_register2, optionally as a per-PID
// service) and returns a Registration whose Close withdraws it; RegisterUnique makes a fresh
// "<prefix>.<random>" name; CheckIn claims a name launchd declared from a plist, and makes a
// service of a name nobody serves, as launchd does; LookUp and LookUpPID return a send right to
// a service.
//
// On macOS these are launchd's calls. On Linux a daemonless namespace gives them the same
// semantics in a private per-user directory ($XDG_RUNTIME_DIR/machport, or
// MACHPORT_BOOTSTRAP_DIR): a process serving names runs one agent (per directory), a listening
// socket for all its names and a lock it flocks for its life; per name the directory holds a
// record of the owner and symbolic links to the owner's socket and lock, so a name costs no
// descriptor of its own. The directory may be of any length: a socket path longer than
// sun_path holds is reached through /proc/self/fd. The flock makes the registrant the owner of
// the names its records claim (so a killed owner frees them all), a look-up checks the peer's
// uid and says which name it wants, and the send right is passed over the socket. The emulated sandbox of package sandboxcheck (MACHPORT_APP_GROUPS)
// applies to both register and look-up there.
//
// # iOS and the App Store: public API only
//
// launchd's bootstrap calls are not public API on iOS (its SDK has no bootstrap.h), and
// bootstrap_register2 and bootstrap_look_up2 are private on macOS too. In a public-API-only build
// (the default on iOS; -tags machport_private enables the private API there; on macOS
// -tags machport_publiconly selects public-only, for a helper inside a Mac App Store app) their
// names are not in the binary, and Register, CheckIn, LookUp and LookUpPID fail with an *Error
// wrapping a *PrivateAPIError, which wraps errors.ErrUnsupported and names the build tag.
// cfmessageport's Listen and Dial work there, through CoreFoundation.
//
// Status on macOS: builds for darwin/arm64 and darwin/amd64 and is checked against the macOS 13.3
// SDK; not run on macOS yet.
package bootstrap
