// Command machping diagnoses Mach services, in the spirit of ping(8): it tells whether a
// service name resolves, whether this process may register one and why not, how long an echo
// round trip takes, and which port rights a process holds. It speaks the three layers a Mach
// service is made of: launchd's bootstrap names, CFMessagePort, and raw mach_msg.
//
// Usage:
//
//	machping [--json] [command] [arguments]
//
// With no command, machping runs selftest. Flags may follow the positional arguments
// ("machping ping NAME -c 3"); "--" ends the flags. A flag takes one dash or two, and a
// one-letter flag's value may be attached as ping(8) takes it ("-c3", "-i0.2", "-W2"). Durations
// are seconds ("0.2") or Go durations ("200ms").
//
// # Commands
//
//	machping [selftest]
//
// Starts 'machping serve' in a child process under a name of its own, pings it across
// processes (5 requests of 56 bytes inline, then 3 of 64 KiB out-of-line), stops the child
// with SIGINT, and checks that the name is gone (a look-up gives 1102) and that this process
// holds no more port names than it started with. It takes no flags.
//
//	machping serve [--raw] [--pid] [-q] NAME
//
// Serves a CFMessagePort echo service under NAME until Ctrl-C or SIGTERM, which withdraw the
// name; each request is logged with the sender's pid and uid. --raw serves the raw echo
// protocol instead; --pid registers a per-PID service; -q logs no requests.
//
//	machping ping [-c count] [-i interval] [-s size] [-W timeout] [--raw] [--pid PID] [-q] NAME
//
// Looks NAME up and sends it echo requests, printing a line per reply (with the replying
// server's pid and uid, from the reply's audit trailer) and a summary with loss,
// min/avg/max/mdev and the 50th and 99th percentiles. -c stops after count requests (default 0:
// until Ctrl-C); -i sends one request per interval (default 1s; a reply that takes longer delays
// the next request); -s sets the payload size
// (default 56; above 4000 bytes payloads travel out-of-line, as CF sends them); -W waits at
// most timeout for each reply (default 2s; the look-up gets at least 5s); --raw uses the raw echo
// protocol (for 'serve --raw'); --pid reaches the per-PID service of process PID; -q prints
// only the summary. A request in flight when Ctrl-C comes counts as transmitted and lost, as
// in ping(8): interrupted before its first reply, a run shows 100% loss.
//
//	machping lookup [--pid PID] [-W timeout] NAME
//
// Looks NAME up (bootstrap_look_up, or bootstrap_look_up2 for the per-PID service of --pid),
// reports the send right that came back and releases it, and the pid of the process serving
// the name where it can be known: on Linux from the emulated namespace's record of the name;
// launchd does not tell it without a message from the server (ping shows the pid from the reply's
// audit trailer). -W gives up after timeout (default 5s).
//
//	machping register [--pid] NAME
//
// Probes check-in (bootstrap_check_in) and registration (bootstrap_register2) of NAME
// separately, withdrawing the name after each success, and reports the sandbox's own answers
// for mach-register and mach-lookup. --pid probes this process's per-PID name instead (there is
// no check-in for those).
//
//	machping check [--group G]... NAME
//
// Validates NAME offline, without asking launchd: non-empty, UTF-8, no NUL, at most 127 bytes,
// and inside one of the application groups given with --group (repeatable; without it, this
// process's own groups). A refusal names the broken rule and, when one can be built, a name
// that would pass. It also prints this process's sandbox state and groups.
//
//	machping rights [--lookup NAME] [--pid PID]
//
// Lists every name in this process's IPC space with its right types and user references (as
// lsmp's urefs), and its open file descriptors (on Linux the emulation keeps ports behind
// descriptors), for leak hunting. --lookup looks NAME up first and holds its right while
// listing. --pid lists another process's rights, as 'lsmp -p': on macOS through task_for_pid,
// which needs root (or a debugger's entitlement) and never serves a platform binary; on Linux
// from the table of names each process of the emulation serves to its own user and root, with its
// descriptors and the service names it serves. Where this user may not inspect the process, it
// says so and exits 4.
//
//	machping bench [--sizes LIST] [--time D] [--transports LIST] [--concurrency N]
//
// Starts an echo server in a child process and measures round trips against it per payload
// size: raw mach requests carrying a send-once reply right (the shape clients and CFMessagePort
// use), CFMessagePort requests, and a Unix stream socket with a length prefix as the baseline.
// It reports the median and 99th-percentile round trip, requests per second, payload megabytes
// per second and the median relative to the Unix socket's. --sizes lists the payload sizes in
// bytes (default 64,4000,65536,1048576); --time measures each transport and size for D (default
// 300ms); --transports picks among unix, raw and cfmessageport (default all three);
// --concurrency N has N requesters of each transport (each with a connection and reply port of
// its own) make requests at once, requests per second then counting them all (default 1, one
// request at a time; at most 256). Progress goes to stderr. Ctrl-C ends the run, even
// against a server that answers nothing: the cases measured in full are printed (in JSON with
// "interrupted": true) and the exit status is 2. A second Ctrl-C kills machping at once.
//
// The children machping starts (the self-test's and the bench's servers) exit when machping
// closes their stdin, withdrawing their names and removing their files; one that has not exited
// within 3 seconds (a stopped one) is killed.
//
//	machping exec --group G [--group G]... [--] CMD [ARG]...
//
// Runs CMD in a sandbox that allows registering and looking up Mach names only inside the
// application groups G, to reproduce the 1100s of a sandboxed app without writing a profile: on
// Linux the emulated sandbox (MACHPORT_APP_GROUPS=G,...), on macOS sandbox-exec with a generated
// profile (Apple's com.apple. services stay reachable for look-ups, as for a sandboxed app; the
// command has no application-group entitlement, so it cannot name its own groups). Flags end at
// CMD. The exit status is CMD's (128+N when signal N killed it, 127 when it cannot be started);
// 2 for bad usage or a malformed group.
//
//	machping help [command]
//	machping help json
//
// Prints the usage, a command's usage with its flags and examples, or the JSON documents.
//
// Commands machping suggests in hints are quoted for a POSIX shell (machping serve
// 'com.ex ample'), so that they can be pasted as printed. A 1100 for a name the sandbox allows
// registering is put down to the name's owner, without talk of the App Sandbox.
//
// Besides --json, the top level takes --version (print the version, the Go release, the
// platform and what carries Mach messages) and --help.
//
// # Man page and shell completions
//
// machping.1 and the bash, zsh and fish completions are made from the command definitions
// ('go generate ./cmd/machping' writes them to cmd/machping/doc, where they are committed; a
// test fails when they are stale), and the binary prints them itself, so that an installed
// machping needs no checkout:
//
//	machping gen man > ~/.local/share/man/man1/machping.1
//	machping gen completion bash > ~/.local/share/bash-completion/completions/machping
//	machping gen completion zsh > "${fpath[1]}/_machping"
//	machping gen completion fish > ~/.config/fish/completions/machping.fish
//
// # Exit status
//
// 0, 1 and 2 as ping(8) uses them; 3 to 5 say why a name is of no use. The same cause gives the
// same status in lookup, ping, check, register, serve and rights:
//
//   - 0: yes. Every reply came, the name resolves, this process may register the name, the
//     name is valid, the self-test passed, serve withdrew its name, rights or bench finished.
//   - 1: no reply. ping lost replies (timeouts, a reply that differs) or its server died
//     mid-run; the self-test failed.
//   - 2: no answer. Bad usage, an unknown command, malformed application groups (this
//     process's, or check's --group), a bench or self-test interrupted by Ctrl-C, a server
//     that stopped on its own, any other failure.
//   - 3: unknown service (1102). No live server has the name: nobody registered it, it was
//     withdrawn, or its server is gone (killed, or its port destroyed).
//   - 4: refused (1100, 1101, 1103). The sandbox refuses the name (for check: it lies outside
//     the application groups, so the sandbox would), or another process has it, or this one
//     already serves it; for rights --pid, this user may not inspect the process.
//   - 5: invalid name. Empty, not UTF-8, holding a NUL byte, or longer than 127 bytes.
//
// # JSON
//
// Every command accepts --json (before or after the command's name). A command then prints one
// line of JSON on stdout, and serve one object per line (the events "serving", "request" and
// "withdrawn"); progress and text diagnostics go to stderr. Each document carries "machping",
// the schema version (now 1; it changes only when a field changes meaning or goes away), and
// "command". A failed command prints an error document whose "error" object explains the
// failure: a message, launchd's or CF's code and its name, the broken rule, this process's
// application groups, a name that would pass, and hints. 'machping help json' documents every
// shape, field by field. Durations in JSON are milliseconds, to a tenth of a microsecond, in
// fields ending in _ms.
//
// # The raw echo protocol
//
// serve --raw and ping --raw speak a protocol of bare Mach messages, without CFMessagePort's
// framing: a request is any Mach message that carries a send-once reply right; the reply goes
// to that right with the request's msgh_id and data, inline when the request was inline and
// out-of-line when it was out-of-line. Clients put payloads above 4000 bytes
// (wire.InlineLimit) out-of-line, as CF does, so that raw and CF measurements compare
// like with like. A message without a reply right is logged as one-way and destroyed. The
// client learns of the server's death from a dead-name notification on its reply port. Mach
// pads inline data to a multiple of 4 bytes, so a raw server sees (and logs) the padded size.
// When nothing comes back, ping suggests the other protocol: a CF server drops raw requests, and
// a CF client drops a raw server's replies.
//
// # Linux
//
// On Linux machping runs over machport's emulation of Mach IPC. Its bootstrap namespace is a
// private per-user directory (one socket per serving process, and a link and an owner record
// per name): $MACHPORT_BOOTSTRAP_DIR, or by default $XDG_RUNTIME_DIR/machport (else
// machport-<uid> in the temporary directory). A client and its
// server must share it, and must run as the same user. MACHPORT_APP_GROUPS (comma-separated
// application-group identifiers) puts a process in an emulated App Sandbox with those groups:
// it may then register and look up only names inside them, and is refused with 1100 otherwise,
// as launchd refuses a sandboxed process on macOS. For example:
//
//	MACHPORT_APP_GROUPS=group.com.example.app machping register com.other.name
//
// # Status
//
// On Linux machping runs and is tested over the emulation. On macOS it builds for darwin/arm64
// and darwin/amd64, and its bindings (the Mach calls of libSystem, launchd through libxpc,
// sandbox_check and the entitlements) are checked against the macOS 13.3 SDK; it has not run on
// macOS.
package main
