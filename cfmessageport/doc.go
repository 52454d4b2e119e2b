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
//		cfmessageport.HandlerFunc(func(ctx context.Context, req *cfmessageport.Request) ([]byte, error) {
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
// ErrInvalid, ErrTransport, ErrBecameInvalid); when the service dies while a request waits, the
// request fails with ErrBecameInvalid at once, not at its deadline.
//
// The codec is public: Packet.Encode lays out a request or reply as CF does (inline up to 4000
// bytes, out-of-line above), and Decode validates a received message with CF's own rules,
// returning a *CorruptError for a message CF would drop.
//
// Status: runs over the Linux emulation and is tested there, in and across processes. On macOS
// the same code runs over the real mach_msg and launchd; interop tests hold it against
// CoreFoundation's own CFMessagePort (bound with purego) in both directions. Those build for
// darwin/arm64 and darwin/amd64 and their bindings are checked against the macOS 13.3 SDK, but
// they have not run on macOS yet.
package cfmessageport
