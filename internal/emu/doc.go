// Package emu emulates the Mach IPC kernel on Linux, so that package mach runs, and is tested,
// with the same semantics there.
//
// Each Mach idea maps onto a Linux primitive with the same failure behaviour:
//
//   - a port (a queue owned by one receive right) merges the read ends of AF_UNIX SOCK_SEQPACKET
//     socketpairs, one per channel, with epoll; injected notifications wait in a local queue
//     signalled by an eventfd in the same epoll. The epoll fd and the eventfd are made when the
//     port first needs them (a channel joins it, a set takes it in, a receiver waits), and the
//     queue counter when its first send right's channel does: a port that no other process
//     holds and nobody waits on costs no fd;
//   - making a send right creates a channel: its write end is the send right, its read end joins
//     the port; copies of a send right share the write end (passed with SCM_RIGHTS), so one
//     sender's order is kept (but not the order across channels, which xnu's one queue keeps:
//     see the Linux differences in package mach);
//   - a send-once right made for a message to another process is a token on a lane: a channel
//     into the port kept by the process that receives on the message's destination, whose write
//     end travels once and is then named by a random key (lane.go). A reply names its token; a
//     right destroyed unused sends a drop, which the port turns into MACH_NOTIFY_SEND_ONCE; a
//     right moving on to a third process becomes a channel of its own first (adopt); when the
//     lane hangs up (its holder exited), every token still outstanding becomes
//     MACH_NOTIFY_SEND_ONCE. The port's process keeps no write end of its lanes, and a token
//     the port did not issue on that lane names nothing. So a request with a reply right costs
//     no socket once the lane exists. A process caches at most laneCacheMax lanes of its peers,
//     dropping the least recently used (and saying so on it, "bye");
//   - any other send-once right (one made inside a process, or moved on) is a channel used for
//     exactly one message; if its write end is closed unused, the port receives
//     MACH_NOTIFY_SEND_ONCE. As on Mach, a message on a send-once right never waits (neither for
//     the queue limit nor for socket space: a lane carries at most as many tokens as its send
//     buffer holds datagrams): a channel that cannot take it at once (a peer forged the right
//     from a socket it filled) has the message destroyed, and the send succeeds, as a send to a
//     port that died does;
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
