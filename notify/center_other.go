//go:build !darwin && !linux

package notify

import "fmt"

// Elsewhere there is no notify center: every call fails with an error wrapping
// errors.ErrUnsupported (Ready says so first).
var sys center = unsupported{}

type unsupported struct{}

func (unsupported) Ready() error {
	return fmt.Errorf("notify: no notify center on this system: %w", errUnsupported)
}
func (unsupported) Post(string) uint32                  { return uint32(StatusServerNotFound) }
func (unsupported) RegisterCheck(string, *int32) uint32 { return uint32(StatusServerNotFound) }
func (unsupported) RegisterMachPort(string, *uint32, int32, *int32) uint32 {
	return uint32(StatusServerNotFound)
}
func (unsupported) Check(int32, *int32) uint32     { return uint32(StatusInvalidToken) }
func (unsupported) GetState(int32, *uint64) uint32 { return uint32(StatusInvalidToken) }
func (unsupported) SetState(int32, uint64) uint32  { return uint32(StatusInvalidToken) }
func (unsupported) Suspend(int32) uint32           { return uint32(StatusInvalidToken) }
func (unsupported) Resume(int32) uint32            { return uint32(StatusInvalidToken) }
func (unsupported) Cancel(int32) uint32            { return uint32(StatusInvalidToken) }
func (unsupported) IsValidToken(int32) bool        { return false }
