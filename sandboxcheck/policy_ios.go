//go:build ios

package sandboxcheck

import (
	"errors"
	"fmt"
)

var platform policy = unsupported{}

// SetApplicationGroups is for the emulated policy; on iOS it returns an error wrapping
// errors.ErrUnsupported.
func SetApplicationGroups(groups ...string) error {
	return fmt.Errorf("sandboxcheck: application groups come from the entitlements on iOS: %w", errors.ErrUnsupported)
}

// ResetApplicationGroups does nothing on iOS.
func ResetApplicationGroups() {}

// On iOS the purego bindings need cgo, which this package does not use: every question about the
// running process fails with errors.ErrUnsupported. ValidateName works.
type unsupported struct{}

var errIOS = fmt.Errorf("sandboxcheck: asking the sandbox is not supported on iOS: %w", errors.ErrUnsupported)

func (unsupported) sandboxed() (bool, error)                       { return false, errIOS }
func (unsupported) groups() ([]string, error)                      { return nil, errIOS }
func (unsupported) allowed(Operation, Scope, string) (bool, error) { return false, errIOS }
