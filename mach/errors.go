package mach

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/machport/machport/internal/abi"
)

// KernReturn is a kern_return_t: the result of a Mach kernel call such as mach_port_allocate.
// Its Error text is the C name and the text mach_error_string gives.
type KernReturn int32

// kern_return_t values that callers commonly test for. Every value equals the SDK's.
const (
	KernSuccess           KernReturn = 0  // KERN_SUCCESS
	KernInvalidAddress    KernReturn = 1  // KERN_INVALID_ADDRESS
	KernNoSpace           KernReturn = 3  // KERN_NO_SPACE
	KernInvalidArgument   KernReturn = 4  // KERN_INVALID_ARGUMENT
	KernFailure           KernReturn = 5  // KERN_FAILURE
	KernResourceShortage  KernReturn = 6  // KERN_RESOURCE_SHORTAGE
	KernNotReceiver       KernReturn = 7  // KERN_NOT_RECEIVER
	KernAlreadyInSet      KernReturn = 11 // KERN_ALREADY_IN_SET
	KernNotInSet          KernReturn = 12 // KERN_NOT_IN_SET
	KernNameExists        KernReturn = 13 // KERN_NAME_EXISTS
	KernAborted           KernReturn = 14 // KERN_ABORTED
	KernInvalidName       KernReturn = 15 // KERN_INVALID_NAME
	KernInvalidTask       KernReturn = 16 // KERN_INVALID_TASK
	KernInvalidRight      KernReturn = 17 // KERN_INVALID_RIGHT
	KernInvalidValue      KernReturn = 18 // KERN_INVALID_VALUE
	KernUrefsOverflow     KernReturn = 19 // KERN_UREFS_OVERFLOW
	KernInvalidCapability KernReturn = 20 // KERN_INVALID_CAPABILITY
	KernRightExists       KernReturn = 21 // KERN_RIGHT_EXISTS
	KernNotSupported      KernReturn = 46 // KERN_NOT_SUPPORTED
	KernOperationTimedOut KernReturn = 49 // KERN_OPERATION_TIMED_OUT
)

// Name returns the C macro name, such as "KERN_INVALID_NAME", or "" for an unknown code.
func (k KernReturn) Name() string { return returnTable[int32(k)].name }

// Text returns what mach_error_string gives for the code.
func (k KernReturn) Text() string { return returnText(int32(k)) }

func (k KernReturn) Error() string { return formatReturn(int32(k)) }

// Is makes a timed-out operation match os.ErrDeadlineExceeded and context.DeadlineExceeded.
func (k KernReturn) Is(target error) bool {
	return k == KernOperationTimedOut && isDeadline(target)
}

// MsgReturn is a mach_msg_return_t: the result of mach_msg.
type MsgReturn int32

// mach_msg_return_t values. Every value equals the SDK's.
const (
	MsgSuccess MsgReturn = 0 // MACH_MSG_SUCCESS

	SendInProgress     MsgReturn = 0x10000001 // MACH_SEND_IN_PROGRESS
	SendInvalidData    MsgReturn = 0x10000002 // MACH_SEND_INVALID_DATA
	SendInvalidDest    MsgReturn = 0x10000003 // MACH_SEND_INVALID_DEST
	SendTimedOut       MsgReturn = 0x10000004 // MACH_SEND_TIMED_OUT
	SendInvalidVoucher MsgReturn = 0x10000005 // MACH_SEND_INVALID_VOUCHER
	SendInterrupted    MsgReturn = 0x10000007 // MACH_SEND_INTERRUPTED
	SendMsgTooSmall    MsgReturn = 0x10000008 // MACH_SEND_MSG_TOO_SMALL
	SendInvalidReply   MsgReturn = 0x10000009 // MACH_SEND_INVALID_REPLY
	SendInvalidRight   MsgReturn = 0x1000000a // MACH_SEND_INVALID_RIGHT
	SendInvalidNotify  MsgReturn = 0x1000000b // MACH_SEND_INVALID_NOTIFY
	SendInvalidMemory  MsgReturn = 0x1000000c // MACH_SEND_INVALID_MEMORY
	SendNoBuffer       MsgReturn = 0x1000000d // MACH_SEND_NO_BUFFER
	SendTooLarge       MsgReturn = 0x1000000e // MACH_SEND_TOO_LARGE
	SendInvalidType    MsgReturn = 0x1000000f // MACH_SEND_INVALID_TYPE
	SendInvalidHeader  MsgReturn = 0x10000010 // MACH_SEND_INVALID_HEADER
	SendInvalidTrailer MsgReturn = 0x10000011 // MACH_SEND_INVALID_TRAILER
	SendNoGrantDest    MsgReturn = 0x10000016 // MACH_SEND_NO_GRANT_DEST
	SendMsgFiltered    MsgReturn = 0x10000017 // MACH_SEND_MSG_FILTERED

	RcvInProgress       MsgReturn = 0x10004001 // MACH_RCV_IN_PROGRESS
	RcvInvalidName      MsgReturn = 0x10004002 // MACH_RCV_INVALID_NAME
	RcvTimedOut         MsgReturn = 0x10004003 // MACH_RCV_TIMED_OUT
	RcvTooLarge         MsgReturn = 0x10004004 // MACH_RCV_TOO_LARGE
	RcvInterrupted      MsgReturn = 0x10004005 // MACH_RCV_INTERRUPTED
	RcvPortChanged      MsgReturn = 0x10004006 // MACH_RCV_PORT_CHANGED
	RcvInvalidNotify    MsgReturn = 0x10004007 // MACH_RCV_INVALID_NOTIFY
	RcvInvalidData      MsgReturn = 0x10004008 // MACH_RCV_INVALID_DATA
	RcvPortDied         MsgReturn = 0x10004009 // MACH_RCV_PORT_DIED
	RcvInSet            MsgReturn = 0x1000400a // MACH_RCV_IN_SET
	RcvHeaderError      MsgReturn = 0x1000400b // MACH_RCV_HEADER_ERROR
	RcvBodyError        MsgReturn = 0x1000400c // MACH_RCV_BODY_ERROR
	RcvInvalidType      MsgReturn = 0x1000400d // MACH_RCV_INVALID_TYPE
	RcvScatterSmall     MsgReturn = 0x1000400e // MACH_RCV_SCATTER_SMALL
	RcvInvalidTrailer   MsgReturn = 0x1000400f // MACH_RCV_INVALID_TRAILER
	RcvInvalidReply     MsgReturn = 0x10004012 // MACH_RCV_INVALID_REPLY
	RcvInvalidArguments MsgReturn = 0x10004013 // MACH_RCV_INVALID_ARGUMENTS
)

// Name returns the C macro name, such as "MACH_SEND_INVALID_DEST", or "" for an unknown code.
func (m MsgReturn) Name() string { return returnTable[int32(m)].name }

// Text returns what mach_error_string gives for the code.
func (m MsgReturn) Text() string { return returnText(int32(m)) }

func (m MsgReturn) Error() string { return formatReturn(int32(m)) }

// base drops the MACH_MSG_IPC_SPACE / _VM_SPACE / _IPC_KERNEL / _VM_KERNEL bits a failed
// send may carry.
func (m MsgReturn) base() MsgReturn { return m &^ abi.MACH_MSG_MASK }

// Timeout reports whether the code is MACH_SEND_TIMED_OUT or MACH_RCV_TIMED_OUT.
func (m MsgReturn) Timeout() bool { b := m.base(); return b == SendTimedOut || b == RcvTimedOut }

// Is makes timeouts match os.ErrDeadlineExceeded and context.DeadlineExceeded, and a code with
// resource-shortage bits match its base code (SendTimedOut|MACH_MSG_IPC_SPACE is SendTimedOut).
func (m MsgReturn) Is(target error) bool {
	if t, ok := target.(MsgReturn); ok {
		return m.base() == t.base()
	}
	return m.Timeout() && isDeadline(target)
}

func isDeadline(target error) bool {
	return target == os.ErrDeadlineExceeded || target == context.DeadlineExceeded
}

func returnText(code int32) string {
	if e, ok := returnTable[code]; ok {
		return e.text
	}
	return unknownReturnText(code)
}

func formatReturn(code int32) string {
	e, ok := returnTable[code]
	if !ok {
		return fmt.Sprintf("0x%x: %s", uint32(code), unknownReturnText(code))
	}
	return fmt.Sprintf("%s (0x%x): %s", e.name, uint32(code), e.text)
}

// OpError is the error of a Mach operation: what was attempted, on which port name, and why.
type OpError struct {
	Op   string // the C call or library operation, e.g. "mach_msg send"
	Name Name   // the port name concerned, or 0
	Err  error  // a KernReturn, a MsgReturn, or a library error
}

func (e *OpError) Error() string {
	if e.Name != 0 {
		return fmt.Sprintf("mach: %s %#x: %v", e.Op, uint32(e.Name), e.Err)
	}
	return fmt.Sprintf("mach: %s: %v", e.Op, e.Err)
}

// Unwrap returns the underlying error.
func (e *OpError) Unwrap() error { return e.Err }

// Timeout reports whether the operation timed out.
func (e *OpError) Timeout() bool { return errors.Is(e.Err, os.ErrDeadlineExceeded) }

// Library errors, for errors.Is.
var (
	// ErrClosed is returned for a right that was already closed or moved away by a send.
	ErrClosed = errors.New("right already closed or moved")
	// ErrInvalidMessage is returned for bytes that are not a well-formed Mach message; the
	// message was dropped and its rights and memory released.
	ErrInvalidMessage = errors.New("malformed Mach message")
	// ErrRejected is returned when a received message carried descriptors the caller does not
	// accept; the message was destroyed (mach_msg_destroy semantics).
	ErrRejected = errors.New("message rejected")
	// ErrMessageTooLarge is returned for a message larger than the limits allow.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrForgedNotification is returned for a message with a notification id that was not sent
	// by the kernel.
	ErrForgedNotification = errors.New("notification not sent by the kernel")
	// ErrNotNotification is returned by ParseNotification for an ordinary message.
	ErrNotNotification = errors.New("not a notification")
	// ErrMoveReceiveUnsupported is returned on Linux for a message that moves a receive right to
	// another process, which the emulation does not support (within a process it works). It
	// wraps errors.ErrUnsupported.
	ErrMoveReceiveUnsupported = fmt.Errorf("moving a receive right to another process: %w", errors.ErrUnsupported)
)

// ReturnError turns a return code from a call that may fail either as a kernel call or as a
// message send or receive (a MIG routine's, say) into its typed error: a MsgReturn for the
// mach_msg_return_t ranges, a KernReturn otherwise, and nil for success.
func ReturnError(code int32) error {
	switch {
	case code == abi.KERN_SUCCESS:
		return nil
	case isMsgReturn(code):
		return MsgReturn(code)
	default:
		return KernReturn(code)
	}
}

// isMsgReturn reports whether code lies in mach_msg's send or receive error ranges (the IPC
// space and kernel bits masked off).
func isMsgReturn(code int32) bool {
	base := code &^ abi.MACH_MSG_MASK
	return base&^0xff == abi.MACH_SEND_IN_PROGRESS&^0xff || base&^0xff == abi.MACH_RCV_IN_PROGRESS&^0xff
}

// kernErr turns a raw kern_return_t into an OpError (nil for KERN_SUCCESS).
func kernErr(op string, name Name, kr int32) error {
	if kr == abi.KERN_SUCCESS {
		return nil
	}
	return &OpError{Op: op, Name: name, Err: KernReturn(kr)}
}

// MessageDropped reports whether err, from Receive, means that one message was destroyed (bytes
// that were no message, descriptors the receiver does not accept, a message larger than it
// takes) and that the next receive may succeed.
func MessageDropped(err error) bool {
	return errors.Is(err, ErrInvalidMessage) || errors.Is(err, ErrRejected) || errors.Is(err, RcvTooLarge) ||
		errors.Is(err, ErrMessageTooLarge)
}

// PortGone reports whether err, from Receive, means that the right received on is gone for good
// (closed or moved away here, or destroyed under the receive), so that no later receive on it can
// succeed. A serving loop ends on these errors alone; every other receive error concerns one
// message or a passing condition.
func PortGone(err error) bool {
	return errors.Is(err, ErrClosed) || errors.Is(err, RcvInvalidName) || errors.Is(err, RcvPortDied) ||
		errors.Is(err, RcvPortChanged) || errors.Is(err, errors.ErrUnsupported)
}
