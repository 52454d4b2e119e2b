// Package threadnames says how many Mach port names an OS thread of this process holds in the
// task's IPC space of its own, for the leak checks that compare mach.Names before and after: on
// macOS its thread port and, once it has made a MIG call (mach.Names is one), a MIG reply port;
// the Linux emulation gives threads none. A check allows this many for each thread created
// meanwhile, and lists both times from the same thread.
package threadnames
