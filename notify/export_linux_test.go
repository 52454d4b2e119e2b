//go:build linux

package notify

// Hooks into the emulated center for the tests.

// DroppedForToken returns how many messages the center dropped for token's full port.
func DroppedForToken(tok int32) uint64 {
	emulated.mu.Lock()
	defer emulated.mu.Unlock()
	if r := emulated.regs[tok]; r != nil {
		return r.dropped
	}
	return 0
}

// SocketDrops returns how many posts this process gave up on an agent whose socket stayed full.
func SocketDrops() uint64 { return emulated.sockFull.Load() }

// GarbageDrops returns how many datagrams this process's agents dropped.
func GarbageDrops() uint64 { return emulated.garbage.Load() }

// AgentPath returns the path of this process's agent socket, or "".
func AgentPath() string {
	emulated.mu.Lock()
	defer emulated.mu.Unlock()
	if emulated.agent == nil {
		return ""
	}
	return emulated.agent.path
}

// CenterDir returns the emulated center's directory.
func CenterDir() (string, error) { return emulated.directory() }

// Handled returns how many posts the center handled for token (delivered, dropped, or held while
// suspended).
func Handled(tok int32) uint64 {
	emulated.mu.Lock()
	defer emulated.mu.Unlock()
	if r := emulated.regs[tok]; r != nil {
		return r.handled
	}
	return 0
}

// EncodePostForTest is the datagram that posts name.
func EncodePostForTest(name string) []byte { return encodePost(name) }

// StatePathForTest is name's state file in dir.
func StatePathForTest(dir, name string) string { return statePath(dir, name) }

// RawRegisterReuse calls the process's center's notify_register_mach_port with NOTIFY_REUSE on
// port, which package notify itself never does with a port it did not get from notify.
func RawRegisterReuse(name string, port uint32) (int32, uint32) {
	var tok int32
	st := sys.RegisterMachPort(name, &port, flagReuse, &tok)
	return tok, st
}

// RawCancel cancels a token RawRegisterReuse gave.
func RawCancel(tok int32) { sys.Cancel(tok) }

// DecodePostForTest decodes a post datagram.
func DecodePostForTest(b []byte) (string, bool) { return decodePost(b) }

// HoldDispatch stops the shared port's receiver from handing out what it receives, so that the
// port's queue fills; release lets it go on. No Watch or Cancel may run meanwhile.
func HoldDispatch() (release func()) {
	hub.mu.Lock()
	return hub.mu.Unlock
}
