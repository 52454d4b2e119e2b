//go:build linux

package bootstrap

import (
	"errors"
	"strings"
)

// A look-up request is the one datagram a look-up sends to the socket it reached through a
// name's link: lookUpMagic, then the name's key (see paths). Every name of a process shares one
// socket (the agent's), which cannot tell which link the peer connected through, so the peer
// says which name it means. The agent reads it from any process of this uid: it is hostile input.
const lookUpMagic = "mpL1"

// keyHashLen is the length of the hexadecimal hash of the name inside a key.
const keyHashLen = 32

// maxKeyLen is the longest key: "p", a pid of up to 10 digits, "-", the hash.
const maxKeyLen = 1 + 10 + 1 + keyHashLen

// maxLookUpRequest is the size of the longest valid request; the agent reads one byte more, so
// that a longer datagram is seen as too long rather than cut to a valid one.
const maxLookUpRequest = len(lookUpMagic) + maxKeyLen

// errBadRequest is why the agent refuses a request that is not one.
var errBadRequest = errors.New("bootstrap: malformed look-up request")

// encodeLookUp is the request for the name whose key is key.
func encodeLookUp(key string) []byte { return []byte(lookUpMagic + key) }

// decodeLookUp returns the key a request names, or errBadRequest.
func decodeLookUp(b []byte) (string, error) {
	if len(b) > maxLookUpRequest || !strings.HasPrefix(string(b), lookUpMagic) {
		return "", errBadRequest
	}
	key := string(b[len(lookUpMagic):])
	if !validKey(key) {
		return "", errBadRequest
	}
	return key, nil
}

// validKey reports whether key has the shape paths gives keys: "g-" and the hash for a global
// name, "p<pid>-" and the hash for a per-PID one (a pid in decimal without leading zeros).
func validKey(key string) bool {
	scope, hash, ok := strings.Cut(key, "-")
	if !ok || len(hash) != keyHashLen || strings.Trim(hash, "0123456789abcdef") != "" {
		return false
	}
	if scope == "g" {
		return true
	}
	pid, ok := strings.CutPrefix(scope, "p")
	return ok && len(pid) >= 1 && len(pid) <= 10 && pid[0] != '0' && strings.Trim(pid, "0123456789") == ""
}
