// Package cfmessageport speaks CoreFoundation's CFMessagePort protocol natively in Go, byte for
// byte as CF does on 64-bit macOS (10.10 and later), so that a Go program can serve or call a
// CFMessagePort of an Objective-C or Swift peer with goroutines and context.Context instead of
// CoreFoundation's run loop.
//
// Inside the App Sandbox, a served name must begin with one of the app's application-group
// identifiers and a period; any other name is refused with BOOTSTRAP_NOT_PRIVILEGED (1100), and
// Listen's error says which rule broke (see package sandboxcheck).
//
// A Go server and the Objective-C client that calls it:
//
//	srv, err := cfmessageport.Listen("group.com.example.app.echo",
//		cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Message) ([]byte, error) {
//			return req.Data, nil // the reply
//		}), nil)
//
//	CFMessagePortRef remote = CFMessagePortCreateRemote(NULL, CFSTR("group.com.example.app.echo"));
//	CFDataRef reply = NULL;
//	SInt32 status = CFMessagePortSendRequest(remote, 1, data, 5.0, 5.0, kCFRunLoopDefaultMode, &reply);
//
// and a Go client of a CFMessagePortCreateLocal service:
//
//	remote, err := cfmessageport.Dial(ctx, "group.com.example.app.echo")
//	reply, err := remote.Request(ctx, 1, []byte("hello"))
//
// Remote.Request returns CF's status codes as errors (ErrSendTimeout, ErrReceiveTimeout,
// ErrInvalid, ErrTransport, ErrBecameInvalid); when the service dies, or the Remote is closed,
// while a request waits, the request fails with ErrBecameInvalid at once, not at its deadline. Request returns memory the
// caller keeps; Remote.RequestFunc instead lends a large (out-of-line) reply to a function
// where it arrived, without copying it (over the Linux emulation, a 16 MiB round trip took
// 0.46x as long as with Request).
//
// The codec is public, in package cfmessageport/wire: Packet.Encode lays out a request or reply
// as CF does (inline up to 4000 bytes, out-of-line above), and Decode validates a received
// message with CF's own rules, returning a *CorruptError for a message CF would drop.
//
// # Two-way connections
//
// A CF server can only answer. ListenPair and DialPair make two-way connections (Conn), where
// each side serves a local port and calls the other's. Two handshakes make them:
//
// The names handshake, which peers using plain CFMessagePort calls can speak in either role:
//
//  1. The client registers a local port under a new name N and serves it.
//  2. It sends the service a request with msgid PairMsgID (0x70616972, 'pair') whose data is N
//     in UTF-8, without a NUL.
//  3. The server looks N up (its remote port for the connection), registers a local port for the
//     connection under a new name M, and replies with M in UTF-8. A reply with no or empty data
//     means the server refused. Then it sends N a probe, a request with msgid PairProbeMsgID
//     (0x70726f62, 'prob'), and opens the connection only if the probe's reply comes from the
//     process that sent the handshake (its audit token); otherwise it withdraws M. Any reply
//     will do: a CF client's callback answers the probe as it likes, a Go client with no data.
//     This keeps a process that knows another connection's name from making the server open a
//     connection to it.
//  4. The client looks M up. From then on the client sends to M and the server sends to N, with
//     ordinary requests. Either side ends the connection by invalidating its local port; the
//     other side sees its remote port become invalid. Each side serves only the process that
//     made the handshake (its audit token is pinned); messages from others are dropped.
//
// By default N is "<service>.peer.<16 hex digits>" and M "<service>.conn.<16 hex digits>", so
// that in the App Sandbox both carry the service's application-group prefix (for service names
// of 106 bytes or more, which leave no room, DefaultPairPrefix is used instead). A listener runs
// at most 32 names handshakes at once and refuses more.
//
// An Objective-C client pairs like this:
//
//	CFMessagePortRef local = CFMessagePortCreateLocal(NULL, myName, callback, NULL, NULL); // N
//	CFMessagePortSetDispatchQueue(local, queue);
//	CFDataRef reply = NULL;
//	CFMessagePortSendRequest(service, 0x70616972, nameData, 5, 5, kCFRunLoopDefaultMode, &reply);
//	CFMessagePortRef remote = CFMessagePortCreateRemote(NULL, replyName); // M, from reply
//
// The fast handshake, when both peers are this library, registers no names: a raw Mach message
// to the service carries a send right to the client's local port, and the answer a send right to
// the server's. CF drops that message (it is shorter than CF's 60-byte header), which the client
// learns at once from its destroyed reply right, and the client then falls back to names.
//
// # Peer requirements
//
// Any process in the bootstrap namespace can register a name first, and any can send to a name
// it can look up. A handler learns who sent each request from the kernel (Message.Sender, the
// audit token); a requirement (package peer) lets the library check it on both ends:
// ServerOptions.Require drops the requests of clients that fail it, before the handler runs (a
// requester gets no reply); DialOptions.Require invalidates a Remote at the first reply from a
// server that fails it (ErrPeerRejected, naming the predicate); PairOptions.Require does both for
// paired connections. A requirement is built from the peer's pid, user, group, executable path
// and, on macOS, a code-signing requirement (`anchor apple generic and certificate
// leaf[subject.OU] = "TEAMID"`); verdicts are cached per process (by pid and pid version on
// macOS, pid and start time on Linux), so only a process's first message pays for the look-up.
//
// What it protects against: a process that squats the service's name before the real server (a
// client with a requirement detects it at its first reply and never returns its data), a process
// of another user or another executable (or, on macOS, one not signed as required) calling a
// server, and, with the names handshake's probe, a process that gives another connection's name.
//
// What it does not protect against:
//   - root, which can forge credentials on Linux (SCM_CREDENTIALS) and debug, inject into or
//     replace any process on macOS;
//   - a process that meets the same predicates: the same user, the same executable, or the same
//     signature (a requirement names a kind of process, not one process): any process signed by
//     the team passes a team requirement, and a process running the same binary passes an
//     executable one;
//   - a compromised peer that passes (code injected into it, a library it loads);
//   - the first request's data: a client's requirement is checked on the reply, so its first
//     request reaches a squatter before it is caught (send nothing secret before a reply has
//     vouched for the server, e.g. start with an empty request);
//   - a sender that exits between sending a message and its check, and whose pid a process of
//     the same user reuses meanwhile (Linux, where the token has no pid version; see package
//     peer).
//
// Status: runs over the Linux emulation and is tested there, in and across processes. On macOS
// the same code runs over the real mach_msg and launchd; interop tests hold it against
// CoreFoundation's own CFMessagePort (bound with purego) in both directions. Those build for
// darwin/arm64 and darwin/amd64 and their bindings are checked against the macOS 13.3 SDK, but
// they have not run on macOS yet. Peer requirements are tested on Linux (pid, user, group,
// executable); the macOS look-ups (csops_audittoken, proc_pidpath, Security's code-signing
// calls) build and are checked against the SDK facts where the facts have them, but have not run.
//
// # iOS and the App Store: public API only
//
// In a public-API-only build (the default on iOS, as in an app and its app extension bound with
// gomobile; -tags machport_private enables the private API there; on macOS
// -tags machport_publiconly selects public-only, for a helper inside a Mac App Store app), Listen,
// Dial, Request and Send go through CoreFoundation's public CFMessagePort functions
// (CFMessagePortCreateLocal with the name, CreateRemote, SendRequest, SetDispatchQueue,
// Invalidate) instead of registering and looking names up with launchd. The API and the errors
// are the same, including the 1100 refusal of a name outside the application groups with the
// sandboxcheck error that explains it (the app supplies its groups with
// sandboxcheck.SetApplicationGroups). CF does not give the peer's audit token, so RequestFrom and
// the Require options fail with errors.ErrUnsupported there; per-process names and pairing need
// private API. That path is executed on Linux over a CoreFoundation double; it has not run on iOS.
package cfmessageport
