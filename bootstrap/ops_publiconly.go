//go:build darwin && (machport_publiconly || (ios && !machport_private))

package bootstrap

// In public-only builds Error.Op names the Go call: launchd's C names are private symbols that
// App Store review looks for in the binary (internal/darwin/mode.go).
const (
	opRegister = "bootstrap.Register"
	opCheckIn  = "bootstrap.CheckIn"
	opLookUp   = "bootstrap.LookUp"
	opLookUp2  = "bootstrap.LookUpPID"
)
