//go:build !linux

package main

// namespaceHint is for launchd's namespace, which every process of a user session shares.
func namespaceHint() string {
	return "a sandboxed server may only register names inside its application groups: look for 1100 in its log"
}
