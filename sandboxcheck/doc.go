// Package sandboxcheck knows the App Sandbox's rule for Mach service names and asks the real
// sandbox about it.
//
// A sandboxed macOS or iOS process may register (and usually look up) only Mach service names
// that begin with one of its application-group identifiers followed by a period, such as
// "group.com.example.app.worker" or "ABCDE12345.com.example.shared.worker". Any other name is
// refused by launchd with BOOTSTRAP_NOT_PRIVILEGED (1100), whose log line does not say why.
//
// ValidateName checks a name offline, on every platform, and its *NameError says which rule broke
// and shows a valid name built from the caller's own name and groups. Sandboxed, Allowed and
// ApplicationGroups describe the running process: on macOS they ask the sandbox (sandbox_check)
// and the process's entitlements; elsewhere they answer from an emulated policy, in which a
// process is sandboxed when it declares application groups through the MACHPORT_APP_GROUPS
// environment variable (comma-separated) or SetApplicationGroups.
//
// # iOS and the App Store: public API only
//
// sandbox_check is private API, and iOS declares no SecTask. In a public-API-only build (the
// default on iOS; -tags machport_private enables the private API there; on macOS
// -tags machport_publiconly selects public-only) Sandboxed, AllowedIn and ApplicationGroups
// return a *PrivateAPIError (wrapping errors.ErrUnsupported) until the app supplies its
// application groups with SetApplicationGroups, from the entitlement it is signed with; then
// ApplicationGroups returns them, Sandboxed is true, and Check explains a name outside them.
// ValidateName works in every build.
//
// Status on macOS: builds for darwin/arm64 and darwin/amd64 and is checked against the macOS 13.3
// SDK; not run on macOS yet.
package sandboxcheck
