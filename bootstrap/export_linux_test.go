package bootstrap

import "github.com/machport/machport/mach"

// SetRandomSuffix replaces RegisterUnique's suffix source until the returned func restores it.
func SetRandomSuffix(f func() string) (restore func()) {
	old := randomSuffix
	randomSuffix = f
	return func() { randomSuffix = old }
}

// NamePaths exposes the emulated namespace's entries for a name, for tests that play a hostile
// or dead owner: the link to the owner's socket and the owner's record.
func NamePaths(name string, pid int) (sock, record string, err error) {
	p, err := paths(name, pid)
	return p.sock, p.record, err
}

// LegacyLockPath is the per-name lock of the namespace's earlier format, whose leftovers the
// namespace cleans up.
func LegacyLockPath(name string, pid int) (string, error) {
	p, err := paths(name, pid)
	return p.legacyLock, err
}

// LookUpRequest is the request a look-up of name sends to its owner's socket.
func LookUpRequest(name string, pid int) ([]byte, error) {
	p, err := paths(name, pid)
	return encodeLookUp(p.key), err
}

// AgentFDs is how many descriptors the namespace holds for all the names a process serves.
const AgentFDs = agentFDs

// FailLoad makes the Darwin logic's binding of libSystem fail with err until the returned func
// restores it; ok is false when this process does not run the Darwin logic.
func FailLoad(err error) (restore func(), ok bool) {
	l, isLaunchd := ns.(launchd)
	if !isLaunchd {
		return nil, false
	}
	failing := l
	failing.load = func() error { return err }
	ns = failing
	return func() { ns = l }, true
}

// theEmulated is the Linux namespace, kept before a switch to the Darwin logic replaces ns (the
// libSystem double's bootstrap calls are then served by it).
var theEmulated = ns.(*emulated)

// PublishSendRight serves name with send, which may be a right to another process's port, as the
// libSystem double's bootstrap_register2 may be given; the namespace owns send from then on,
// unless it fails.
func PublishSendRight(name string, send *mach.SendRight) (withdraw func() error, err error) {
	return theEmulated.publish("bootstrap_register2", name, send, false)
}

// ErrOwnerSocketGone explains a look-up's 1102 when the name's owner lives but its socket file
// was removed behind its back.
var ErrOwnerSocketGone = errOwnerSocketGone

// OnListenQueueFull runs f each time a look-up finds its owner's listen queue full, until the
// returned func restores the default.
func OnListenQueueFull(f func()) (restore func()) {
	queueFullHook.Store(&f)
	return func() { queueFullHook.Store(nil) }
}

// PollAgentSockets makes agents started from now on check their socket's file by polling, as
// they do without inotify.
func PollAgentSockets() { noInotify.Store(true) }

// TouchAgents does at once what this process's agents do every keepYoungEvery: touch their files
// and their names' entries.
func TouchAgents() {
	theEmulated.mu.Lock()
	var agents []*agent
	for _, a := range theEmulated.agents {
		agents = append(agents, a)
	}
	theEmulated.mu.Unlock()
	for _, a := range agents {
		a.touch()
	}
}

// OnLookUpConnected runs f in each look-up between its connect to the owner's socket and its
// request, until the returned func restores it.
func OnLookUpConnected(f func()) (restore func()) {
	lookUpConnectedHook.Store(&f)
	return func() { lookUpConnectedHook.Store(nil) }
}
