// Package notify posts and watches Darwin notifications (<notify.h>): stateless, named
// notifications that notifyd relays between processes, each name carrying a 64-bit state. It is
// public API on macOS and iOS (App Store-safe), and the base of CoreFoundation's Darwin notify
// center (CFNotificationCenterGetDarwinNotifyCenter): how an app and its extensions say "the
// shared container changed", and how a daemon hears TimeZoneChange or ClockSet.
//
// A watcher and a poster, which may be different processes:
//
//	sub, err := notify.Watch(ctx, "com.example.config-changed")
//	if err != nil { ... }
//	defer sub.Cancel()
//	go func() { _ = notify.Post("com.example.config-changed") }()
//	d := <-sub.C() // d.Name, d.Token, d.Time
//
// (Example is the runnable version.)
//
// Deliveries come on a Mach port, as notify_register_mach_port makes them: an empty message (a
// bare 24-byte header, msgh_id the registration's token). Watch shares one port among all the
// process's subscriptions, received by one goroutine and dispatched by token; RegisterPort gives
// the port itself to callers who want the raw messages; RegisterCheck registers for polling with
// Check. State and SetState read and write the name's state; Suspend holds deliveries and
// Resume releases them; Cancel ends a registration and releases what it holds.
//
// # Coalescing
//
// A notification says "posted at least once since you last heard", never how many times:
//   - notifyd sends each message with a zero timeout, so a post that finds the port's queue full
//     (16 messages for the ports it makes) is dropped; the messages already queued stand for it.
//   - A Subscription's C holds one delivery; one made while it waits is merged into it
//     (Subscription.Coalesced counts them).
//   - Several posts between two Checks give one true; posts while suspended give one delivery at
//     Resume.
//
// So a post is never lost without a later delivery covering it: read the state, or the data the
// name stands for, when a delivery arrives, not a count of deliveries.
//
// # Platforms
//
// On macOS and iOS the calls are libsystem_notify's, bound with purego (no cgo on macOS), in
// both the default and the public-API-only build. On Linux an emulated center gives the same
// semantics to every process of a user, next to the emulated bootstrap namespace: a post reaches
// every live registration in every process, the state is shared per name, a registration dies
// with its process, and garbage from another process is dropped (center_linux.go). Elsewhere every
// call fails with an error wrapping errors.ErrUnsupported.
//
// Errors are *Error values whose cause is a Status (NOTIFY_STATUS_*), itself an errors.Is
// sentinel.
//
// Status: builds for darwin/arm64 and darwin/amd64; checked against the macOS 13.3 and iOS 17.5
// SDK facts; executed on Linux (emulated center, and the Darwin logic over the libSystem double);
// not run on macOS or iOS.
package notify
