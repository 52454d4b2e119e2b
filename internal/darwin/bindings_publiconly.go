//go:build darwin && (machport_publiconly || (ios && !machport_private))

package darwin

// A public-only build: bindings_private.go is left out, so no private symbol's name is in the
// binary (mode.go).

// PrivateBuild reports whether this build has the private bindings: not in this one.
const PrivateBuild = false
