//go:build !linux

package main

// namespaceHint is for launchd's namespace, which every process of a user session shares.
func namespaceHint() string {
	return "a sandboxed server may only register names inside its application groups: look for 1100 in its log"
}

// ownerPID is not known on macOS: launchd tells a look-up no owner, and the only witness, the
// audit trailer of a message from the owner, takes a round trip ('machping ping' shows it).
func ownerPID(name string, pid int) (owner int, known bool) { return 0, false }

// ownerPIDNote says why the owner's pid is not known.
const ownerPIDNote = "launchd does not tell; 'machping ping' shows the replying server's pid"
