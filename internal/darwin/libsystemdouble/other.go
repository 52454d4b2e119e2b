//go:build !linux

// The double runs on Linux only; elsewhere the package is empty, so that a build of an explicit
// package list (`GOOS=ios go build $(go list ./...)`, as .ci/run does) does not stop at it.

package libsystemdouble
