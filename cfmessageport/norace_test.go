//go:build !race

package cfmessageport_test

const raceEnabled = false
