// Package emu emulates the Mach IPC kernel on Linux, so that package mach runs, and is tested,
// with the same semantics there.
//
// Each Mach idea maps onto a Linux primitive with the same failure behaviour:
//
//   - a port (a queue owned by one receive right) merges the read ends of AF_UNIX SOCK_SEQPACKET
//     socketpairs, one per channel, with epoll; injected notifications, and the messages sent
//     inside the port's own process, wait in a local queue signalled by an eventfd in the same
//     epoll. The epoll fd and the eventfd are made when the port first needs them (a channel
//     joins it, a set takes it in, a receiver waits), and the queue counter when a channel or a
//     sender waiting for room does: a port that no other process holds and nobody waits on costs
//     no fd, with or without send rights;
//   - a send right held in its port's own process is a reference to the port (sendChan.local):
//     a message sent through it is made into the received form at once (the credentials
//     SCM_CREDENTIALS would give, memory mapped as a receiver maps it, rights as references) and
//     goes straight into the local queue, after taking a slot under the queue limit as any
//     sender does. A queued message holds its send right until it is received, so no-senders
//     waits for it; the port's death turns the process's send rights into a dead name at once
//     and fires their dead-name request. MAKE_SEND and MAKE_SEND_ONCE as a message's
//     destination take the same path;
//   - a send right carried to another process travels as a channel, made when it is first
//     carried out: its write end goes with SCM_RIGHTS, its read end joins the port; later copies
//     share the write end (the local right keeps it while it lives), so one sender's order is
//     kept (but not the order across channels, which xnu's one queue keeps: see the Linux
//     differences in package mach). A send right received for a port of this process is local
//     again;
//   - no channel is set up under the space lock (setup.go): an operation that needs one
//     (socketpair, SO_PASSCRED, epoll_ctl) records the need, undoes its pass, makes it without
//     the lock and copies in again; a lane right adopted by a channel of its own is set up by a
//     goroutine of its own;
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
//   - a send right to a port of this process, carried to another process's port for the second
//     time and on, travels on a send lane (sendlane.go): a data channel and a control channel
//     into the port, kept by the process that receives on that destination for as long as both
//     ports live (at most sendLaneCacheMax of them). Once it said hello, a right is a record
//     naming the lane, without a descriptor; the port counts the tokens issued and not given
//     back as senders, and the holder gives them back with one "return n" when the send right
//     it made of them goes; a message destroyed unreceived gives its token back; a holder that
//     exits gives back all of them (its control channel hangs up); a right passed on to a third
//     process gets a channel of its own first, whose read end goes to the port on the lane's
//     data channel before the message (adopt), and joins the port as soon as it is read there;
//   - any other send-once right (one made inside a process, or moved on) is a channel used for
//     exactly one message; if its write end is closed unused, the port receives
//     MACH_NOTIFY_SEND_ONCE, queued as xnu queues it, before the call that destroyed the right
//     returns, when that call is the last close and made in the port's own process; else as
//     soon as the port's process looks (a receive, a poll, Peek or a status query reads the
//     channel's end of file). Destroying a send-once right never fires no-senders. As on
//     Mach, a message on a send-once right never waits (neither for
//     the queue limit nor for socket space: a lane carries at most as many tokens as its send
//     buffer holds datagrams): a channel that cannot take it at once (a peer forged the right
//     from a socket it filled) has the message destroyed, and the send succeeds, as a send to a
//     port that died does;
//   - a dead name is a write end whose reader is gone (EPIPE, EPOLLHUP); dead-name notifications
//     come from a monitor that watches write ends for hang-ups;
//   - no-senders fires when every channel of the port has hung up, no token is outstanding on a
//     send lane (nor a message queued on one), and no local send right remains (in a name, a
//     send in progress or a queued message);
//   - the queue limit is a message count shared by all senders of a port, in a small shared memfd
//     (futex wait and wake), as Mach counts messages, not bytes; while only local senders use a
//     port, the port counts in memory, and the counter is made (with that count) when a channel
//     or a waiting sender needs it;
//   - out-of-line memory travels as a sealed memfd that the receiver maps copy-on-write; copies
//     of 32 KiB to 1 MiB reuse a per-channel pool of memfds (the send-once rights of one lane
//     share one; an OFD lock keeps a memfd from being rewritten until its receiver has its
//     copy), and the receiver copies memory of up to 1 MiB that a sender could still change into
//     recycled memory of its own (fresh memory when many copies are out); AllocateRegion's pages are populated when made, and the memfds
//     of deallocated regions are recycled (once no receiver holds them) so that a new region's
//     pages are ready to fill (regionpool.go); a message sent inside the process takes its memory
//     as a receiver would (a pooled copy is copied out as it is queued, and its memfd is free);
//   - the audit trailer's pid, uid and gid come from SCM_CREDENTIALS, so the kernel vouches for
//     them; notifications the emulation synthesizes carry the kernel's all-zero audit token;
//   - port names are a per-process table with user-reference counts, like an IPC space.
//
// The package speaks in raw kern_return_t / mach_msg_return_t codes and plain structures; package
// mach adapts it to its kernel seam. Everything is Linux-only; the package is empty elsewhere.
package emu
