//go:build darwin && !ios

package bootstrap

import "github.com/machport/machport/internal/darwin"

// The darwin-only loader: launchd's namespace (namespace_libsystem.go) over libSystem, bound at
// the first call and reading the bootstrap_port data symbol.
var ns namespace = launchd{load: darwin.Load, bootstrapPort: darwin.BootstrapPort}
