//go:build darwin

package threadnames

// PerThread is the names each thread holds: a thread port and a MIG reply port.
const PerThread = 2
