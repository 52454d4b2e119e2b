//go:build !darwin || (!machport_publiconly && (!ios || machport_private))

package bootstrap

// The names Error.Op gives the operations: launchd's C calls. Public-only builds name the Go
// calls instead (ops_publiconly.go), so that the private symbols' names stay out of the binary.
const (
	opRegister = "bootstrap_register2"
	opCheckIn  = "bootstrap_check_in"
	opLookUp   = "bootstrap_look_up"
	opLookUp2  = "bootstrap_look_up2"
)
