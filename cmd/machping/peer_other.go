//go:build !linux && !(darwin && !ios)

package main

import "errors"

// inspectPeer has no way in on this system.
func inspectPeer(pid int) (peerSpace, error) {
	return peerSpace{}, errors.New("listing another process's rights is supported on Linux and macOS only")
}

const permissionHint = ""
