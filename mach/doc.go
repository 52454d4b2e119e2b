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
// On macOS (darwin, not iOS) the package calls libSystem through purego, without cgo. That code
// builds for darwin/arm64 and darwin/amd64 and every struct, constant and symbol it uses is
// checked against the macOS 13.3 SDK, but it has not run on macOS yet: the project's machines
// are Linux, and the macOS CI jobs are the first place it will run.
//
// On other platforms every operation that needs a kernel returns an error wrapping
// errors.ErrUnsupported, until the Linux emulation (Mach semantics over SOCK_SEQPACKET,
// SCM_RIGHTS and memfd) lands. The codec, the error types and the notification rules are
// portable and tested everywhere.
package mach
