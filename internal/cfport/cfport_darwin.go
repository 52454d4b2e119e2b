//go:build darwin

package cfport

import (
	"github.com/ebitengine/purego"
	"github.com/machport/machport/internal/darwin"
)

// The darwin-only seams of cfport_libsystem.go: the loader opens CoreFoundation (the flat
// framework path on iOS), and purego makes the callout CF calls on its dispatch queue's threads.
func init() {
	loadCoreFoundation = darwin.LoadCoreFoundation
	newCallback = purego.NewCallback
}
