//go:build darwin

package notify

import "github.com/machport/machport/internal/darwin"

// The darwin-only loader (macOS and iOS, which GOOS=ios also builds): libnotify's calls
// (notify_libsystem.go) over libSystem, bound at the first call.
var sys center = libnotify{load: darwin.Load}
