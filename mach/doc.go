// Package mach speaks Mach IPC: ports and rights, mach_msg with inline data, port rights and
// out-of-line memory, and kernel notifications.
//
// # Rights
//
// Each kind of right has its own type: *ReceiveRight, *SendRight, *SendOnceRight, *DeadName and
// *PortSet. A value stands for exactly one right (one user reference), and Close releases exactly
// that one; Close is safe to call twice. Rights that arrive in messages are adopted with
// Message.TakeRemote and Message.TakePort; names from elsewhere with AdoptSend and friends.
//
// # Messages
//
// A Message is a header (destination, reply port, voucher, id), descriptors (*PortDescriptor,
// *OOLDescriptor) and an inline body. Ports in a message are built with CopySendOf, MoveSendOf,
// MakeSendOf, MakeSendOnceOf, MoveSendOnceOf and MoveReceiveOf, so that Send knows which rights
// the message takes away. Send and Receive take a context.Context: a deadline becomes the Mach
// timeout, and cancelling a Receive wakes it promptly. The codec (Message.Append, Decode) writes
// and reads exactly the bytes the Darwin kernel uses (<mach/message.h>, #pragma pack(4)), with no
// host-layout struct casts; it is public so that tools and tests can build and check messages.
//
// Nothing leaks on any path: when a send fails, the rights and memory the message carried stay
// with the caller or are released as Mach specifies (see Send); a received message that is
// malformed, or carries descriptors the caller does not accept, is destroyed whole
// (mach_msg_destroy semantics), never half-adopted.
//
// Notifications (no-senders, dead-name, send-once, port-destroyed) are requested with
// RequestNotification and decoded with ParseNotification, which trusts a notification only when
// its audit trailer is the kernel's, never because of its msgh_id.
//
// Errors are *OpError values wrapping KernReturn (kern_return_t) or MsgReturn
// (mach_msg_return_t), whose texts are mach_error_string's; timeouts match
// os.ErrDeadlineExceeded and context.DeadlineExceeded.
//
// # What runs where
//
// On macOS and iOS the package calls libSystem through purego (without cgo on macOS; purego needs
// cgo on iOS). Its calls are public API on both, so it works the same in the public-API-only
// mode (the default on iOS; -tags machport_publiconly on macOS). That code
// builds for darwin/arm64 and darwin/amd64 and every struct, constant and symbol it uses is
// checked against the macOS 13.3 SDK, but it has not run on macOS yet: the project's machines
// are Linux, and the macOS CI jobs are the first place it will run.
//
// On Linux the same API runs over an emulation of the Mach kernel (internal/emu): a port merges
// the read ends of SOCK_SEQPACKET socketpairs and a queue of the messages sent inside its own
// process (where a send right costs no descriptor), send rights travel with SCM_RIGHTS (or, to a
// process that keeps a lane into their port, as tokens without a descriptor), out-of-line
// memory is a sealed memfd the receiver maps copy-on-write, the audit trailer comes from
// SCM_CREDENTIALS, and port names live in a per-process table with user references. The
// behavioural tests run unchanged on both. What differs on Linux:
//
//   - A receive right cannot move to another process (MOVE_RECEIVE across processes fails with
//     ErrMoveReceiveUnsupported); within a process it moves as on Darwin.
//   - There are no vouchers (a voucher port fails with MACH_SEND_INVALID_VOUCHER), and no
//     out-of-line port arrays or guarded port descriptors: sending an OOLPortsDescriptor or a
//     GuardedPortDescriptor, which macOS carries, fails with MACH_SEND_INVALID_TYPE and leaves
//     every right with the sender.
//   - A message carries at most 1024 descriptors and, to a port of another process, 126 send
//     rights (SCM_RIGHTS passes 253 fds; a send right takes two: its channel and its port's queue
//     counter). A message to a port of the same process carries its rights without fds.
//   - A notification's port must be a receive right of the same process; a new no-senders or
//     dead-name request replaces the old one and RequestNotification returns no previous right
//     (a second port-destroyed request fails with KernFailure, as on macOS). A request that ends
//     without firing (replaced, cancelled, or a no-senders request whose port is destroyed)
//     gives up its send-once right silently, where xnu hands the replaced right back to the
//     caller or sends MACH_NOTIFY_SEND_ONCE with it. While armed, a request counts as a send-once
//     right of its notify port (PortStatus.SendOnceCount), as on macOS.
//   - Dead-name and no-senders notifications about rights that crossed processes come from a
//     monitor goroutine that watches for hang-ups, a moment after the event rather than
//     synchronously with it (a dead-name request also fires when this process next looks at the
//     name and finds its port dead); about rights held in their port's own process they come
//     synchronously, as on macOS. In the same way, a send-once right that comes as a reply right
//     on a lane its receiver already keeps (see below) arrives as MACH_PORT_DEAD only once that
//     monitor has seen its port's process close the lane: in the moment between, it arrives
//     named, and a send to it fails as to a dead right.
//   - Messages keep their order per channel, not across channels: the send rights a process
//     holds for another process's port write to one socket (they share it: the socket that
//     came with the first of them, or the send lane they came on as tokens); the send-once
//     rights made for messages to another process's port share a few sockets ("lanes", one per
//     destination port and a few rights in flight); every other send-once right has a socket of
//     its own; messages sent through send rights in the port's own process (and through
//     MAKE_SEND or MAKE_SEND_ONCE as the destination) go into the port's local queue, in order;
//     a receive takes from the local queue first, then from whichever socket has a message. So
//     messages sent one after the other through send rights of different processes, or through
//     a send right and a send-once right, may be received in the other order, and the local
//     queue's messages (those sent inside the process, the notifications the emulation makes, a
//     message left queued by MACH_RCV_TOO_LARGE, and the messages a port status query read off
//     lanes to count them) are received before messages still waiting in sockets. xnu's port
//     queue (ipc_mqueue) is one FIFO by arrival.
//   - A process keeps the lanes of at most 1024 of its peers' ports (two fds each), so that a
//     peer cannot make it hold fds without bound; past that it drops the least recently used
//     one and tells the port's process, whose later rights take a new lane. A send-once right
//     sent on the dropped lane before the port's process heard of it (when more than 1024 reply
//     ports take turns at one server) arrives as MACH_PORT_DEAD, and its port receives
//     MACH_NOTIFY_SEND_ONCE for it; xnu has no such limit.
//   - A process that received send rights to another process's port more than once, in
//     messages to one of its own ports, keeps a "send lane" into that port (one per port of
//     its own that received them, for as long as both ports live, at most 256 in all, four fds
//     each), so that further send rights come without descriptors; past 256 they come as
//     descriptors. xnu has no such cost. Carrying such a right on to a third process passes
//     the port's process a channel for it first, on that lane, and waits for room there (within
//     the send's timeout) as a message to the port would; xnu never waits to copy a right in.
//   - A send-once right to a port of this process that came back through another process is
//     taken for a right to another process's port: a receive right cannot move in a message
//     sent through it (ErrMoveReceiveUnsupported), where macOS moves it.
//   - mach_port_insert_right never gives a right a new name: where xnu would move a send-once
//     right, or the last reference of a send right, to a free name of the caller's choosing,
//     InsertRight fails with KernFailure. (Inserting a right under the name it has, and the
//     errors for other names, are as on macOS.)
//   - A send to a port of another process that dies while the message is on its way fails with
//     MACH_SEND_INVALID_DEST and leaves every right with the sender, as a send to a port already
//     dead does; macOS destroys such a message and returns success (xnu's ipc_kmsg_send), as the
//     emulation does for a port of the sending process.
//   - A send that times out (MACH_SEND_TIMED_OUT) is handed back as on macOS, with the rights
//     it made; a send that fails with MACH_SEND_NO_BUFFER (the emulation's own shortage of
//     sockets, descriptors or memory) leaves everything as it was before the send, and makes
//     nothing.
//   - The audit token's uid fields all hold the sender's real uid, which is what SCM_CREDENTIALS
//     reports; audit session and pid version are 0.
//   - The queue limit is a message count shared by the port's senders through a small shared
//     memory counter; a sender that writes to that memory can disturb the port's flow control,
//     and send rights to one port coalesce under one name by an identity the sending process
//     supplies. Mach's kernel vouches for both; the emulation trusts peers that hold a right.
//   - Out-of-line memory is copied once, into sealed memfds, except a whole region from
//     AllocateRegion sent with Deallocate: that moves without a copy, as Mach moves the pages.
//     Copies of 32 KiB to 1 MiB go through memfds the sender reuses (one pool per channel,
//     sealed against new writers, readable by their owner only; an OFD lock keeps the sender
//     from rewriting one until its receiver has copied what it carried). Memory that its
//     sender could still change (those memfds, a region moved whole) is copied by the receiver
//     up to 1 MiB; a larger moved region is mapped, and a sender that kept another mapping of
//     it could still change it; Mach would not allow that. The emulation recycles the memfds
//     of deallocated regions of 32 KiB and more (keeping at most 8 idle, of 64 MiB in all,
//     until none has been deallocated for 200 ms; then unmapped), and leaves the ones it keeps
//     mapped: touching such a region of up to 1 MiB after deallocating it (or after sending it
//     with Deallocate) does not fault as on Mach, and writes memory the emulation will zero and
//     hand out again, read-write, to a later AllocateRegion of its size; a larger one is left
//     read-only meanwhile, so that writing it faults as on Mach, but reading it does not.
//     Copies of 8 MiB and more are split into one memfd per CPU (at most 8) written in parallel,
//     because writes to one memfd are serialised by the kernel.
//   - Peek reads the messages up to the one it looks at off their channels and puts them back at
//     the head of the port's queue, where they no longer count against the queue limit (as a
//     message a receive left queued as too large). The size it reports is computed as xnu's.
//   - The context and mac trailers carry the port's context; msgh_ad and msgh_labels are 0, as
//     on a Mac without a MAC policy that labels messages.
//   - Like xnu, user references stop at 65535 instead of failing with KERN_UREFS_OVERFLOW, and
//     a count stopped there comes down only by a release of all 65535 at once.
//   - As mach_msg does on Darwin, a Receive whose context has neither deadline nor cancellation
//     blocks an OS thread; one with either parks its goroutine in Go's poller instead. Of the
//     receives of one port that block a thread, one at a time does: the others wait in Go until
//     it has a message, then the longest waiting one takes its place. A receive on a port that
//     has had send-once rights sent to other processes (a reply port) parks in the poller too
//     while another receive of the process has blocked its thread for less than 100 ms on a
//     port that other processes can send to (not a port only the process itself and the
//     kernel's notifications reach), and while as many receives of the process as it has Ps
//     (GOMAXPROCS) are parked there, the latest for less than 100 ms: many goroutines awaiting
//     replies at once would otherwise each hold a thread, and wait for each other's. A receive
//     that may wait first yields to Go's scheduler (runtime.Gosched) when no receive of the
//     process has for 5 ms, so that the runtime does not take a goroutine that only sends and
//     receives for one that runs too long, and preempt it. When a receive blocks its thread on
//     a port with one sender channel, it blocks in recvmsg on that channel, and the emulation
//     interrupts it with SIGURG (sent to that thread only) when the port gets a notification,
//     a new channel or dies. Go's runtime sends SIGURG itself to preempt goroutines, so
//     programs already tolerate it; one that asks for SIGURG with signal.Notify will see these
//     too. Such a receive polls its channel first, for up to 50 µs and yielding the CPU between
//     reads, when no other receive of its process polls or is parked in the poller, the
//     process has more than one CPU and GOMAXPROCS above 1, and its port's previous wait ended
//     within 100 µs: a reply then finds the receiver running instead of a CPU to wake (in a
//     virtual machine that wake can take tens of microseconds). Polls that come up empty four
//     times more than they get a message (counting from when the two were last even) make the
//     port's next 64 receives block at once. Polling costs CPU that Mach's receive, which
//     blocks at once, does not.
//
// Elsewhere every operation that needs a kernel returns an error wrapping
// errors.ErrUnsupported. The codec, the error types and the notification rules are portable.
package mach
