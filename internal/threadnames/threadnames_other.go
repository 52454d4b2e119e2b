//go:build !darwin

package threadnames

// PerThread is the names each thread holds: none in the Linux emulation, and no IPC space
// elsewhere.
const PerThread = 0
