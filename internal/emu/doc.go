// Package emu emulates the Mach IPC kernel on Linux, so that package mach runs, and is tested,
// with the same semantics there.
//
// Each Mach idea maps onto a Linux primitive with the same failure behaviour:
//
//   - a port (a queue owned by one receive right) merges the read ends of AF_UNIX SOCK_SEQPACKET
//     socketpairs, one per channel, with epoll; injected notifications wait in a local queue
//     signalled by an eventfd in the same epoll;
//   - making a send right creates a channel: its write end is the send right, its read end joins
//     the port; copies of a send right share the write end (passed with SCM_RIGHTS), so one
//     sender's order is kept (but not the order across channels, which xnu's one queue keeps:
//     see the Linux differences in package mach);
//   - a send-once right is a channel used for exactly one message; if its write end is closed
//     unused, the port receives MACH_NOTIFY_SEND_ONCE. As on Mach, a message on it never waits
//     (neither for the queue limit nor for socket space): a channel that cannot take it at once
//     (a peer forged the right from a socket it filled) has the message destroyed, and the send
//     succeeds, as a send to a port that died does;
//   - a dead name is a write end whose reader is gone (EPIPE, EPOLLHUP); dead-name notifications
//     come from a monitor that watches write ends for hang-ups;
//   - no-senders fires when every channel of the port has hung up and no local send right remains;
//   - the queue limit is a message count shared by all senders of a port, in a small shared memfd
//     (futex wait and wake), as Mach counts messages, not bytes;
//   - out-of-line memory travels as a sealed memfd that the receiver maps copy-on-write; copies of
//     32 KiB to 1 MiB reuse a per-channel pool of memfds (an OFD lock per message keeps a memfd
//     from being rewritten while anyone holds it), and the receiver copies memory of up to 1 MiB
//     that a sender could still change into recycled memory of its own; AllocateRegion's pages
//     are populated when made;
//   - the audit trailer's pid, uid and gid come from SCM_CREDENTIALS, so the kernel vouches for
//     them; notifications the emulation synthesizes carry the kernel's all-zero audit token;
//   - port names are a per-process table with user-reference counts, like an IPC space.
//
// The package speaks in raw kern_return_t / mach_msg_return_t codes and plain structures; package
// mach adapts it to its kernel seam. Everything is Linux-only; the package is empty elsewhere.
package emu
