package mach

import (
	"context"
	"encoding/binary"
	"fmt"
)

// NotifyKind is a notification's msgh_id (<mach/notify.h>).
type NotifyKind int32

// Notifications.
const (
	NotifyPortDeleted   NotifyKind = 65 // MACH_NOTIFY_PORT_DELETED
	NotifyPortDestroyed NotifyKind = 69 // MACH_NOTIFY_PORT_DESTROYED
	NotifyNoSenders     NotifyKind = 70 // MACH_NOTIFY_NO_SENDERS
	NotifySendOnce      NotifyKind = 71 // MACH_NOTIFY_SEND_ONCE
	NotifyDeadName      NotifyKind = 72 // MACH_NOTIFY_DEAD_NAME
)

func (k NotifyKind) String() string {
	switch k {
	case NotifyPortDeleted:
		return "port-deleted"
	case NotifyPortDestroyed:
		return "port-destroyed"
	case NotifyNoSenders:
		return "no-senders"
	case NotifySendOnce:
		return "send-once"
	case NotifyDeadName:
		return "dead-name"
	}
	return fmt.Sprintf("notification(%d)", int32(k))
}

// RequestNotification asks the kernel to send a notification about name to notify, through a
// send-once right made from it (mach_port_request_notification with MAKE_SEND_ONCE). It returns
// the send-once right of an earlier request that this one replaced, or nil; close it. A port has
// at most one port-destroyed request: a second fails with KernFailure and the first stays armed
// (xnu's ipc_policy.c), so for NotifyPortDestroyed the previous right is always nil.
//
// Kinds: NotifyNoSenders on a receive right (it fires at once if the port has no send rights and
// sync <= its make-send count; else when the last send right goes: xnu's ipc_port_nsrequest),
// NotifyDeadName on a send or send-once right (sync 1 fires at once if the name is already
// dead), NotifyPortDestroyed on a receive right. Send-once notifications need no request.
//
// A nil notify cancels the request of that kind (MACH_PORT_NULL), returning its send-once right
// as a replaced one is. Cancel a dead-name request before moving or releasing the right: a
// message that moves it races the port's death, which could still fire the request.
func RequestNotification(name Name, kind NotifyKind, sync uint32, notify *ReceiveRight) (*SendOnceRight, error) {
	const op = "mach_port_request_notification"
	k, err := getKernel(op)
	if err != nil {
		return nil, err
	}
	target := NameNull
	if notify != nil {
		if target, err = notify.s.held(op); err != nil {
			return nil, err
		}
	}
	prev, kr := k.requestNotification(name, int32(kind), sync, target, MakeSendOnce)
	if err := kernErr(op, name, kr); err != nil {
		return nil, err
	}
	if !prev.Valid() {
		return nil, nil
	}
	return AdoptSendOnce(prev), nil
}

// RequestNoSenders asks for MACH_NOTIFY_NO_SENDERS on notify when the port has no send rights
// left: at once if it has none now and at least sync have been made, else when the last goes.
func (r *ReceiveRight) RequestNoSenders(sync uint32, notify *ReceiveRight) (*SendOnceRight, error) {
	n, err := r.s.held("mach_port_request_notification")
	if err != nil {
		return nil, err
	}
	return RequestNotification(n, NotifyNoSenders, sync, notify)
}

// RequestPortDestroyed asks for MACH_NOTIFY_PORT_DESTROYED on notify, carrying the receive right
// back, instead of destroying the port when this right is deallocated. A port takes one such
// request: a second fails with KernFailure, and the returned right is always nil.
func (r *ReceiveRight) RequestPortDestroyed(notify *ReceiveRight) (*SendOnceRight, error) {
	n, err := r.s.held("mach_port_request_notification")
	if err != nil {
		return nil, err
	}
	return RequestNotification(n, NotifyPortDestroyed, 0, notify)
}

// RequestDeadName asks for MACH_NOTIFY_DEAD_NAME on notify when the port dies.
func (r *SendRight) RequestDeadName(notify *ReceiveRight) (*SendOnceRight, error) {
	n, err := r.s.held("mach_port_request_notification")
	if err != nil {
		return nil, err
	}
	return RequestNotification(n, NotifyDeadName, 1, notify)
}

// Notification is a decoded kernel notification.
type Notification struct {
	Kind NotifyKind
	// Name is the dead or deleted name (dead-name, port-deleted). A dead-name notification
	// carries one more user reference of the dead name: release it with Deallocate(Name) when
	// done (CloseDeadName does that).
	Name Name
	// MakeSendCount is the port's make-send count (no-senders).
	MakeSendCount uint32
	// Right is the receive right that came back (port-destroyed); the caller owns it.
	Right *ReceiveRight
}

// CloseDeadName releases the extra dead-name reference a dead-name notification carries.
func (n *Notification) CloseDeadName() error {
	if n.Kind != NotifyDeadName || !n.Name.Valid() {
		return nil
	}
	name := n.Name
	n.Name = NameNull // once only
	return AdoptDeadName(name).Close()
}

// Sizes of the notification messages the kernel sends (<mach/notify.h>, without trailer).
const (
	ndrSize               = 8  // NDR_record_t
	notifyWithFieldSize   = 36 // header + NDR + one 32-bit field
	notifySendOnceSize    = 24 // header only
	notifyPortDestroyedSz = 40 // header + body + port descriptor
)

// IsNotificationID reports whether id is one of the notification ids a peer could forge.
func IsNotificationID(id int32) bool {
	switch NotifyKind(id) {
	case NotifyPortDeleted, NotifyPortDestroyed, NotifyNoSenders, NotifySendOnce, NotifyDeadName:
		return true
	}
	return false
}

// ParseNotification decodes a received message as a kernel notification. It trusts only what
// the kernel sent: the message must carry an audit trailer whose token is the kernel's (all zero),
// because any process holding a send right can send a message with msgh_id 65..72. The trailer
// is trustworthy in a message filled by Receive, not in one decoded from bytes of unknown origin. A forged one
// fails with ErrForgedNotification (destroy it); an ordinary message with ErrNotNotification.
//
// For a port-destroyed notification the receive right moves from the message to the result.
func ParseNotification(m *Message) (*Notification, error) {
	if !IsNotificationID(m.ID) {
		return nil, fmt.Errorf("mach: msgh_id %d: %w", m.ID, ErrNotNotification)
	}
	kind := NotifyKind(m.ID)
	if m.Trailer.Size < auditTrailerSize {
		return nil, fmt.Errorf("mach: %v notification without an audit trailer: %w", kind, ErrForgedNotification)
	}
	if !m.Trailer.Audit.IsKernel() {
		return nil, fmt.Errorf("mach: %v notification from pid %d: %w", kind, m.Trailer.Audit.PID(), ErrForgedNotification)
	}
	n := &Notification{Kind: kind}
	switch kind {
	case NotifyNoSenders, NotifyDeadName, NotifyPortDeleted:
		if m.Complex || m.Size != notifyWithFieldSize || len(m.Body) < ndrSize+4 {
			return nil, fmt.Errorf("mach: %v notification of %d bytes: %w", kind, m.Size, ErrInvalidMessage)
		}
		v := binary.LittleEndian.Uint32(m.Body[ndrSize:])
		if kind == NotifyNoSenders {
			n.MakeSendCount = v
		} else {
			n.Name = Name(v)
		}
	case NotifySendOnce:
		if m.Complex || m.Size != notifySendOnceSize {
			return nil, fmt.Errorf("mach: %v notification of %d bytes: %w", kind, m.Size, ErrInvalidMessage)
		}
	case NotifyPortDestroyed:
		if !m.Complex || m.Size != notifyPortDestroyedSz || len(m.Descriptors) != 1 {
			return nil, fmt.Errorf("mach: %v notification with %d descriptors: %w", kind, len(m.Descriptors), ErrInvalidMessage)
		}
		d, ok := m.Descriptors[0].(*PortDescriptor)
		if !ok || d.Port.Disposition != PortReceive {
			return nil, fmt.Errorf("mach: %v notification without a receive right: %w", kind, ErrInvalidMessage)
		}
		r, _ := m.TakePort(0)
		n.Right, _ = r.(*ReceiveRight)
	}
	return n, nil
}

// Drain receives and destroys every message queued on r. A dead-name notification among them
// carries a user reference of the dead name that destroying the message would not release (as
// in Mach): Drain releases it. Call it before destroying a port that may hold notifications.
func Drain(r *ReceiveRight) {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 0) // poll

		var m Message
		err := Receive(ctx, r, &m)
		cancel()
		if err != nil {
			return
		}
		if n, perr := ParseNotification(&m); perr == nil {
			_ = n.CloseDeadName()
		}
		_ = m.Destroy()
	}
}
