package mach

// This file records, for every kern_return_t code in <mach/kern_return.h> and
// every mach_msg_return_t code in <mach/message.h> (macOS 13 SDK), the C name
// and the exact string that libsystem_kernel's mach_error_string() returns for
// it.
//
// How mach_error_string composes its result (xnu libsyscall/mach/
// mach_error_string.c, error_codes.c, errorlib.h, err_kern.sub,
// err_mach_ipc.sub, err_ipc.sub):
//
//   - The value is first passed through do_compat(), which maps pre-Mach-3
//     numbers: -100..-199 to err_ipc/send, -200..-299 to err_ipc/rcv,
//     -300..-399 (the MIG_* codes) to err_mach_ipc/mig, 1000..1099,
//     1600..1699 and 27600..27699 to err_server subsystems 0, 1 and 2.
//   - It is then split into system = (v>>26)&0x3f, subsystem = (v>>14)&0xfff
//     and code = v&0x3fff (<mach/error.h>). KERN_* values are system 0
//     (err_kern), subsystem 0, whose strings all begin "(os/kern) ".
//     MACH_SEND_* values are system 4 (err_mach_ipc), subsystem 0, strings
//     "(ipc/send) ..."; MACH_RCV_* values are system 4, subsystem 1, strings
//     "(ipc/rcv) ...".
//   - Each string in the tables already carries its "(system/subsystem) "
//     prefix; mach_error_string returns the table entry itself, it does not
//     build or format anything. In particular nothing ever appends the number.
//   - A code past the end of a known subsystem's table yields the bare
//     NO_SUCH_ERROR string "unknown error code" (no prefix, no number).
//   - A subsystem past the end of a known system's list yields that system's
//     bad_sub string, e.g. "(operating system/?) unknown subsystem error"
//     for system 0 and "(ipc/?) unknown subsystem error" for systems 3 and 4.
//   - A system with no table (errorlib_system_null: 5, 6, 7, 8..0x36,
//     0x39..0x3f, which includes every negative value outside the do_compat
//     ranges, e.g. -1) has bad_sub == NULL, so mach_error_string returns a
//     NULL pointer. The "(?/?) unknown error system" branch in the C code is
//     unreachable because the system field is masked to 6 bits.
//
// Sources: apple-oss-distributions/xnu libsyscall/mach/err_kern.sub (a
// post-macOS-13 tag, 57 kern strings 0..56); darlinghq/darling
// src/kernel/libsyscall/mach/err_mach_ipc.sub (the newest copy of that file
// that could be found; Apple's own copies in apple/darwin-xnu are older and
// agree on every shared entry); apple/darwin-xnu libsyscall/mach/
// mach_error_string.c, error_codes.c, errorlib.h, err_ipc.sub; names and
// values from the macOS 13.3 SDK headers (darwin-abi.json).

// returnEntry is one kern_return_t / mach_msg_return_t value: its C name and mach_error_string's text.
type returnEntry struct {
	name string // C macro name, e.g. "MACH_SEND_INVALID_DEST"
	text string // what mach_error_string returns, e.g. "(ipc/send) invalid destination port"
}

// returnTable maps each known code to its entry.
//
// It holds every KERN_* return code (0..56) and every MACH_SEND_* /
// MACH_RCV_* return code (not option flags) of the macOS 13 SDK.
// MACH_MSG_SUCCESS equals KERN_SUCCESS (0) and is listed under that name.
//
// Entries whose text is "unknown error code" are codes that exist in
// <mach/message.h> but lie past the end of the (ipc/send) or (ipc/rcv)
// string table in the err_mach_ipc.sub that was found (23 send strings,
// 17 receive strings), so mach_error_string returns NO_SUCH_ERROR for
// them. MACH_SEND_INVALID_OPTIONS (code 19) falls on a slot that the table
// labels "(ipc/send) unused error". If Apple extended err_mach_ipc.sub for
// mach_msg2 (xnu-8792+), these eight entries are the ones that would differ.
var returnTable = map[int32]returnEntry{
	// <mach/kern_return.h>: system 0 (err_kern), subsystem 0 "(os/kern)".
	0:  {"KERN_SUCCESS", "(os/kern) successful"},
	1:  {"KERN_INVALID_ADDRESS", "(os/kern) invalid address"},
	2:  {"KERN_PROTECTION_FAILURE", "(os/kern) protection failure"},
	3:  {"KERN_NO_SPACE", "(os/kern) no space available"},
	4:  {"KERN_INVALID_ARGUMENT", "(os/kern) invalid argument"},
	5:  {"KERN_FAILURE", "(os/kern) failure"},
	6:  {"KERN_RESOURCE_SHORTAGE", "(os/kern) resource shortage"},
	7:  {"KERN_NOT_RECEIVER", "(os/kern) not receiver"},
	8:  {"KERN_NO_ACCESS", "(os/kern) no access"},
	9:  {"KERN_MEMORY_FAILURE", "(os/kern) memory failure"},
	10: {"KERN_MEMORY_ERROR", "(os/kern) memory error"},
	11: {"KERN_ALREADY_IN_SET", "(os/kern) already in set"},
	12: {"KERN_NOT_IN_SET", "(os/kern) not in set"},
	13: {"KERN_NAME_EXISTS", "(os/kern) name exists"},
	14: {"KERN_ABORTED", "(os/kern) aborted"},
	15: {"KERN_INVALID_NAME", "(os/kern) invalid name"},
	16: {"KERN_INVALID_TASK", "(os/kern) invalid task"},
	17: {"KERN_INVALID_RIGHT", "(os/kern) invalid right"},
	18: {"KERN_INVALID_VALUE", "(os/kern) invalid value"},
	19: {"KERN_UREFS_OVERFLOW", "(os/kern) urefs overflow"},
	20: {"KERN_INVALID_CAPABILITY", "(os/kern) invalid capability"},
	21: {"KERN_RIGHT_EXISTS", "(os/kern) right exists"},
	22: {"KERN_INVALID_HOST", "(os/kern) invalid host"},
	23: {"KERN_MEMORY_PRESENT", "(os/kern) memory present"},
	24: {"KERN_MEMORY_DATA_MOVED", "(os/kern) memory data moved"},
	25: {"KERN_MEMORY_RESTART_COPY", "(os/kern) memory restart copy"},
	26: {"KERN_INVALID_PROCESSOR_SET", "(os/kern) invalid processor set"},
	27: {"KERN_POLICY_LIMIT", "(os/kern) policy limit"},
	28: {"KERN_INVALID_POLICY", "(os/kern) invalid policy"},
	29: {"KERN_INVALID_OBJECT", "(os/kern) invalid object"},
	30: {"KERN_ALREADY_WAITING", "(os/kern) already waiting"},
	31: {"KERN_DEFAULT_SET", "(os/kern) default set"},
	32: {"KERN_EXCEPTION_PROTECTED", "(os/kern) exception protected"},
	33: {"KERN_INVALID_LEDGER", "(os/kern) invalid ledger"},
	34: {"KERN_INVALID_MEMORY_CONTROL", "(os/kern) invalid memory control"},
	35: {"KERN_INVALID_SECURITY", "(os/kern) invalid security"},
	36: {"KERN_NOT_DEPRESSED", "(os/kern) not depressed"},
	37: {"KERN_TERMINATED", "(os/kern) object terminated"},
	38: {"KERN_LOCK_SET_DESTROYED", "(os/kern) lock set destroyed"},
	39: {"KERN_LOCK_UNSTABLE", "(os/kern) lock unstable"},
	40: {"KERN_LOCK_OWNED", "(os/kern) lock owned by another"},
	41: {"KERN_LOCK_OWNED_SELF", "(os/kern) lock owned by self"},
	42: {"KERN_SEMAPHORE_DESTROYED", "(os/kern) semaphore destroyed"},
	43: {"KERN_RPC_SERVER_TERMINATED", "(os/kern) RPC terminated"},
	44: {"KERN_RPC_TERMINATE_ORPHAN", "(os/kern) terminate orphan"},
	45: {"KERN_RPC_CONTINUE_ORPHAN", "(os/kern) let orphan continue"},
	46: {"KERN_NOT_SUPPORTED", "(os/kern) service not supported"},
	47: {"KERN_NODE_DOWN", "(os/kern) remote node down"},
	48: {"KERN_NOT_WAITING", "(os/kern) thread not waiting"},
	49: {"KERN_OPERATION_TIMED_OUT", "(os/kern) operation timed out"},
	50: {"KERN_CODESIGN_ERROR", "(os/kern) code signing error"},
	51: {"KERN_POLICY_STATIC", "(os/kern) policy is static"},
	52: {"KERN_INSUFFICIENT_BUFFER_SIZE", "(os/kern) insufficient input buffer size"},
	53: {"KERN_DENIED", "(os/kern) denied by security policy"},
	54: {"KERN_MISSING_KC", "(os/kern) missing kernel collection"},
	55: {"KERN_INVALID_KC", "(os/kern) invalid kernel collection"},
	56: {"KERN_NOT_FOUND", "(os/kern) result not found"},

	// <mach/message.h> send errors: system 4 (err_mach_ipc), subsystem 0
	// "(ipc/send)". Codes 6 and 20 have no macro in the macOS 13 SDK.
	0x10000001: {"MACH_SEND_IN_PROGRESS", "(ipc/send) send in progress"},
	0x10000002: {"MACH_SEND_INVALID_DATA", "(ipc/send) invalid data"},
	0x10000003: {"MACH_SEND_INVALID_DEST", "(ipc/send) invalid destination port"},
	0x10000004: {"MACH_SEND_TIMED_OUT", "(ipc/send) timed out"},
	0x10000005: {"MACH_SEND_INVALID_VOUCHER", "(ipc/send) invalid voucher"},
	0x10000007: {"MACH_SEND_INTERRUPTED", "(ipc/send) interrupted"},
	0x10000008: {"MACH_SEND_MSG_TOO_SMALL", "(ipc/send) msg too small"},
	0x10000009: {"MACH_SEND_INVALID_REPLY", "(ipc/send) invalid reply port"},
	0x1000000a: {"MACH_SEND_INVALID_RIGHT", "(ipc/send) invalid port right"},
	0x1000000b: {"MACH_SEND_INVALID_NOTIFY", "(ipc/send) invalid notify port"},
	0x1000000c: {"MACH_SEND_INVALID_MEMORY", "(ipc/send) invalid memory"},
	0x1000000d: {"MACH_SEND_NO_BUFFER", "(ipc/send) no msg buffer"},
	0x1000000e: {"MACH_SEND_TOO_LARGE", "(ipc/send) msg too large"},
	0x1000000f: {"MACH_SEND_INVALID_TYPE", "(ipc/send) invalid msg-type"},
	0x10000010: {"MACH_SEND_INVALID_HEADER", "(ipc/send) invalid msg-header"},
	0x10000011: {"MACH_SEND_INVALID_TRAILER", "(ipc/send) invalid msg-trailer"},
	0x10000012: {"MACH_SEND_INVALID_CONTEXT", "(ipc/send) invalid context for reply"},
	0x10000013: {"MACH_SEND_INVALID_OPTIONS", "(ipc/send) unused error"}, // table slot 19 is labelled "unused error"
	0x10000015: {"MACH_SEND_INVALID_RT_OOL_SIZE", "(ipc/send) out-of-line buffer too large"},
	0x10000016: {"MACH_SEND_NO_GRANT_DEST", "(ipc/send) destination does not accept OOL ports"},
	0x10000017: {"MACH_SEND_MSG_FILTERED", "unknown error code"},  // past the 23-entry send table
	0x10000018: {"MACH_SEND_AUX_TOO_SMALL", "unknown error code"}, // past the 23-entry send table
	0x10000019: {"MACH_SEND_AUX_TOO_LARGE", "unknown error code"}, // past the 23-entry send table

	// <mach/message.h> receive errors: system 4 (err_mach_ipc), subsystem 1
	// "(ipc/rcv)". Code 16 has no macro in the macOS 13 SDK.
	0x10004001: {"MACH_RCV_IN_PROGRESS", "(ipc/rcv) receive in progress"},
	0x10004002: {"MACH_RCV_INVALID_NAME", "(ipc/rcv) invalid name"},
	0x10004003: {"MACH_RCV_TIMED_OUT", "(ipc/rcv) timed out"},
	0x10004004: {"MACH_RCV_TOO_LARGE", "(ipc/rcv) msg too large"},
	0x10004005: {"MACH_RCV_INTERRUPTED", "(ipc/rcv) interrupted"},
	0x10004006: {"MACH_RCV_PORT_CHANGED", "(ipc/rcv) port changed"},
	0x10004007: {"MACH_RCV_INVALID_NOTIFY", "(ipc/rcv) invalid notify port"},
	0x10004008: {"MACH_RCV_INVALID_DATA", "(ipc/rcv) invalid data"},
	0x10004009: {"MACH_RCV_PORT_DIED", "(ipc/rcv) port died"},
	0x1000400a: {"MACH_RCV_IN_SET", "(ipc/rcv) port in set"},
	0x1000400b: {"MACH_RCV_HEADER_ERROR", "(ipc/rcv) header error"},
	0x1000400c: {"MACH_RCV_BODY_ERROR", "(ipc/rcv) body error"},
	0x1000400d: {"MACH_RCV_INVALID_TYPE", "(ipc/rcv) invalid scatter list entry"},
	0x1000400e: {"MACH_RCV_SCATTER_SMALL", "(ipc/rcv) overwrite region too small"},
	0x1000400f: {"MACH_RCV_INVALID_TRAILER", "(ipc/rcv) invalid msg-trailer"},
	0x10004011: {"MACH_RCV_IN_PROGRESS_TIMED", "unknown error code"}, // past the 17-entry receive table
	0x10004012: {"MACH_RCV_INVALID_REPLY", "unknown error code"},     // past the 17-entry receive table
	0x10004013: {"MACH_RCV_INVALID_ARGUMENTS", "unknown error code"}, // past the 17-entry receive table
}

// unknownReturnText is what mach_error_string returns for a code not in returnTable.
//
// It follows mach_error_string's own steps (do_compat, then system,
// subsystem, code). The results are:
//
//   - an unknown code in a known subsystem: the bare string
//     "unknown error code" (NO_SUCH_ERROR), with no "(os/kern) " style
//     prefix and no number; for example 57..0x3fff in (os/kern), the
//     bootstrap errors 1100..1105, and any MACH_SEND_* / MACH_RCV_* value
//     that carries the MACH_MSG_IPC_SPACE, MACH_MSG_VM_SPACE,
//     MACH_MSG_IPC_KERNEL or MACH_MSG_VM_KERNEL bits (those bits land in
//     the 14-bit code field and are not stripped);
//   - an unknown subsystem of a known system: that system's bad_sub string,
//     "(operating system/?) unknown subsystem error" for system 0 and
//     "(ipc/?) unknown subsystem error" for systems 3 and 4;
//   - a system with no table at all (5..0x36 except the ones below, and
//     0x39..0x3f, which covers -1 and every other negative value outside
//     -399..-100): mach_error_string returns a NULL pointer; this function
//     returns "" for it (printf("%s") would show "(null)").
//
// Codes that are unnamed but inside a known table get that table's string:
// 0x10000000 "(ipc/send) no error", 0x10000006 and 0x10000014
// "(ipc/send) unused error", 0x10004000 "(ipc/rcv) no error", 0x10004010
// "(ipc/rcv) DIPC transport error", the MIG_* codes -300..-309 (mapped to
// err_mach_ipc/mig) and the old IPC codes -100..-111 and -200..-208 (mapped
// to err_ipc).
//
// Not reproduced: the string tables of (os/unix) (system 0 subsystem 3,
// unix_err(errno)), err_us (system 1), err_server (system 2, including
// do_compat's 1000..1099, 1600..1699 and 27600..27699), err_libkern (0x37)
// and err_iokit (0x38, IOReturn values). For those this function returns
// "unknown error code", which is exact only for codes past the end of the
// corresponding C table. System 7 is treated as having no table, as in
// error_codes.c up to at least xnu-7195; later xnu adds an err_vm table
// there.
func unknownReturnText(code int32) string {
	const noSuchError = "unknown error code"

	// do_compat (mach_error_string.c): old-style numbers.
	v := code
	switch {
	case -200 < v && v <= -100:
		v = -(v + 100) | 3<<26 // IPC_SEND_MOD
	case -300 < v && v <= -200:
		v = -(v + 200) | 3<<26 | 1<<14 // IPC_RCV_MOD
	case -400 < v && v <= -300:
		v = -(v + 300) | 4<<26 | 2<<14 // MACH_IPC_MIG_MOD
	case 1000 <= v && v < 1100:
		v = (v - 1000) | 2<<26 // SERV_NETNAME_MOD
	case 1600 <= v && v < 1700:
		v = (v - 1600) | 2<<26 | 1<<14 // SERV_ENV_MOD
	case 27600 <= v && v < 27700:
		v = (v - 27600) | 2<<26 | 2<<14 // SERV_EXECD_MOD
	}
	if e, ok := returnTable[v]; ok {
		return e.text
	}

	u := uint32(v)
	system := u >> 26 & 0x3f
	sub := u >> 14 & 0xfff
	c := u & 0x3fff
	pick := func(texts []string) string {
		if c < uint32(len(texts)) {
			return texts[c]
		}
		return noSuchError
	}

	switch system {
	case 0: // err_kern: (os/kern), (os/?), (os/?), (os/unix)
		if sub > 3 {
			return "(operating system/?) unknown subsystem error"
		}
		// (os/kern) 0..56 are all in returnTable; (os/?) has no codes;
		// (os/unix) is not reproduced (see above).
		return noSuchError
	case 3: // err_ipc (err_ipc.sub), reached through do_compat
		switch sub {
		case 0:
			return pick([]string{
				"(ipc/send) unknown error",
				"(ipc/send) invalid memory",
				"(ipc/send) invalid port",
				"(ipc/send) timed out",
				"(ipc/send) unused error",
				"(ipc/send) will notify",
				"(ipc/send) notify in progress",
				"(ipc/send) kernel refused message",
				"(ipc/send) send interrupted",
				"(ipc/send) send message too large",
				"(ipc/send) send message too small",
				"(ipc/send) message size changed while being copied",
			})
		case 1:
			return pick([]string{
				"(ipc/rcv) unknown error",
				"(ipc/rcv) invalid memory",
				"(ipc/rcv) invalid port",
				"(ipc/rcv) receive timed out",
				"(ipc/rcv) message too large",
				"(ipc/rcv) no space for message data",
				"(ipc/rcv) only sender remaining",
				"(ipc/rcv) receive interrupted",
				"(ipc/rcv) port receiver changed or port became enabled",
			})
		case 2:
			return pick([]string{
				"(ipc/mig) type check failure in message interface",
				"(ipc/mig) wrong return message ID",
				"(ipc/mig) server detected error",
				"(ipc/mig) bad message ID",
				"(ipc/mig) server found wrong arguments",
				"(ipc/mig) no reply should be sent",
				"(ipc/mig) server raised exception",
				"(ipc/mig) user specified array not large enough for return info",
			})
		}
		return "(ipc/?) unknown subsystem error"
	case 4: // err_mach_ipc (err_mach_ipc.sub)
		switch sub {
		case 0: // (ipc/send), 23 entries; named ones are in returnTable
			switch c {
			case 0:
				return "(ipc/send) no error"
			case 6, 20:
				return "(ipc/send) unused error"
			}
			return noSuchError
		case 1: // (ipc/rcv), 17 entries; named ones are in returnTable
			switch c {
			case 0:
				return "(ipc/rcv) no error"
			case 16:
				return "(ipc/rcv) DIPC transport error"
			}
			return noSuchError
		case 2: // (ipc/mig): MIG_TYPE_ERROR (-300) .. MIG_TRAILER_ERROR (-309)
			return pick([]string{
				"(ipc/mig) client type check failure",
				"(ipc/mig) wrong reply message ID",
				"(ipc/mig) server detected error",
				"(ipc/mig) bad request message ID",
				"(ipc/mig) server type check failure",
				"(ipc/mig) no reply should be sent",
				"(ipc/mig) server raised exception",
				"(ipc/mig) array not large enough",
				"(ipc/mig) server died",
				"(ipc/mig) unknown trailer format",
			})
		}
		return "(ipc/?) unknown subsystem error"
	case 1, 2, 0x37, 0x38: // err_us, err_server, err_libkern, err_iokit: not reproduced
		return noSuchError
	}
	// errorlib_system_null: bad_sub is NULL, mach_error_string returns NULL.
	return ""
}
