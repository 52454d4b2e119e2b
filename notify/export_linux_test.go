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
