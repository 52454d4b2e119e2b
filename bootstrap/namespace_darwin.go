//go:build darwin

package bootstrap

import "github.com/machport/machport/internal/darwin"

// The darwin-only loader: launchd's namespace (namespace_libsystem.go) over libSystem, bound at
// the first call and reading the bootstrap_port data symbol. A public-only build (iOS without
// -tags machport_private, macOS with -tags machport_publiconly) gets publicOnly instead; the
// choice is a constant, so the compiler drops launchd's logic and the linker its private names.
var ns namespace = darwinNamespace()

func darwinNamespace() namespace {
	if !darwin.PrivateBuild {
		return publicOnly{}
	}
	return launchd{load: darwin.Load, bootstrapPort: darwin.BootstrapPort}
}
