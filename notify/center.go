package notify

// center is libnotify's C interface, one method per notify(3) call, with its status codes and
// out-parameters. The Darwin logic (notify_libsystem.go) implements it over libSystem; the Linux
// emulation (center_linux.go) implements it with notifyd's semantics. The portable code above it
// (notify.go, watch.go) is the same on every platform.
type center interface {
	// Ready reports why the calls cannot be made (libSystem not loaded, no notify directory).
	Ready() error
	Post(name string) uint32
	RegisterCheck(name string, token *int32) uint32
	RegisterMachPort(name string, port *uint32, flags int32, token *int32) uint32
	Check(token int32, check *int32) uint32
	GetState(token int32, state *uint64) uint32
	SetState(token int32, state uint64) uint32
	Suspend(token int32) uint32
	Resume(token int32) uint32
	Cancel(token int32) uint32
	IsValidToken(token int32) bool
}
