//go:build !darwin && !linux

package sandboxcheck

import (
	"errors"
	"fmt"
)

var platform policy = unsupported{}

const groupsSource = "nowhere: application groups are a macOS and iOS idea, emulated on Linux only"

// SetApplicationGroups is for the emulated policy; here it returns an error wrapping
// errors.ErrUnsupported.
func SetApplicationGroups(groups ...string) error {
	return fmt.Errorf("sandboxcheck: no emulated sandbox on this platform: %w", errors.ErrUnsupported)
}

// ResetApplicationGroups does nothing here.
func ResetApplicationGroups() {}

// Systems other than macOS, iOS and Linux have neither a Mach sandbox nor the emulation: every
// question about the running process fails with errors.ErrUnsupported. ValidateName works
// everywhere.
type unsupported struct{}

var errUnsupported = fmt.Errorf("sandboxcheck: asking the sandbox is not supported on this platform: %w", errors.ErrUnsupported)

func (unsupported) sandboxed() (bool, error)                       { return false, errUnsupported }
func (unsupported) groups() ([]string, error)                      { return nil, errUnsupported }
func (unsupported) allowed(Operation, Scope, string) (bool, error) { return false, errUnsupported }
func (unsupported) groupRule(Operation) bool                       { return false }
