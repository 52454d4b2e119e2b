//go:build !darwin

package cfport

import (
	"errors"
	"fmt"
)

var errNoCF = fmt.Errorf("CoreFoundation is available on macOS only: %w", errors.ErrUnsupported)

func createLocal(string, bool, uintptr) (uintptr, uintptr, error) { return 0, 0, errNoCF }
func createRemote(string, bool, int) (uintptr, error)             { return 0, errNoCF }

// The rest is unreachable: no port can be made here.
func isValid(uintptr) bool        { return false }
func closeLocal(uintptr, uintptr) {}
func closeRemote(uintptr)         {}
func sendRequest(uintptr, int32, []byte, float64, bool) ([]byte, Status) {
	return nil, IsInvalid
}
