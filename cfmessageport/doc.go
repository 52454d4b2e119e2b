// Package cfmessageport speaks CoreFoundation's CFMessagePort protocol natively in Go, byte for
// byte as CF does on 64-bit macOS (10.10 and later), so that a Go program can serve or call a
// CFMessagePort of an Objective-C or Swift peer without CoreFoundation's run loop.
//
// This package is being built. What exists now is the public codec: Packet.Encode lays out a
// request or reply as CF does (inline up to 4000 bytes, out-of-line above), and Decode validates
// a received message with CF's own rules, returning a *CorruptError for a message CF would drop.
package cfmessageport
