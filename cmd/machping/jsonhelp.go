package main

// jsonHelp documents the JSON shapes ('machping help json'). TestJSONHelpCoversFields keeps it
// in step with the types.
const jsonHelp = `machping --json: the JSON documents

Common rules
  With --json (before or after the command), a command prints one line of JSON on stdout and
  nothing else there; progress and text go to stderr. serve prints one object per line instead,
  told apart by "event": "serving", then "request" per request, then "withdrawn".
  Every document, and every document nested in another, starts with:
    machping  int     the schema version, now 1. It is bumped only when a field changes meaning
                      or goes away; fields may be added within a version, so ignore unknown ones.
    command   string  the command: "version", "selftest", "serve", "ping", "lookup",
                      "register", "check", "rights", "check-peer", "bench", "bench-server" or "notify" (a nested
                      document names its own: selftest's pings say "ping", rights' lookup "lookup")
  A command that fails prints an error document instead of its own (see error below) and exits
  with its cause's status (below). The answers come in the command's own document instead:
  lookup's "failure" when no live server has the name (exit 3), register's probes and check's
  verdict (whatever the exit status), ping's replies (exit 0 or 1). Unknown commands and
  unparsable flags are reported on stderr in words only (exit 2).
  Durations are milliseconds to a tenth of a microsecond, in fields ending in _ms (bench's
  time_per_case_s is in seconds). A field marked "?" is omitted when empty (0, false, "", null,
  no elements). [T] is an array of T, [] when empty; {bool} an object of booleans.

Exit status
  One cause gives one status, whichever of lookup, ping, check, register, serve and rights meets it:
    3  unknown service: no live server has the name (1102)
    4  refused: the sandbox refuses the name (1100; check: outside the groups), or it is taken
       (1100 or 1101 by another process, 1103 by this one); this user may not inspect the
       process (rights --pid, check-peer); the server fails ping --require
    5  invalid name: empty, not UTF-8, a NUL, longer than 127 bytes (check's rules empty,
       invalid-utf8, nul, too-long)
    2  malformed application groups (check's rule bad-group), bad usage, any other failure
  version   0
  selftest  0 every step passed; 1 a step failed ("failure" says which); 2 interrupted
  serve     0 the name was withdrawn after Ctrl-C or SIGTERM; 2 it could not be registered
            (or withdrawn)
  ping      0 every reply came; 1 a reply was lost, none was sent, or the server died mid-run;
            4 the server failed --require (a ping document with "rejected"); 3, 4, 5 or 2 the
            service could not be pinged at all (an error document)
  lookup    0 the name resolves; 3 no live server has it (a lookup document); 4, 5 or 2 (an
            error document)
  register  0 it may be registered; 4, 5 or 2 it may not (a register document)
  check     0 the name is valid; 4, 5 or 2 it is not (a check document)
  rights    0; 3, 4, 5 or 2 the --lookup failed; 4 --pid: this user may not inspect the
            process; 2 no such process, or another failure
  check-peer 0 every predicate passes; 1 one fails (both a check-peer document); 2 a bad
            EXPR, no such process, or another failure; 4 this user may not read the process
  bench     0; 2 a failure
  notify    0; 2 a failure (watch: 0 after -n deliveries or Ctrl-C)
  Bad usage exits 2 with every command.

version (machping --version --json)
  version            string    machping's release, e.g. "0.1.0"
  module?            string    the module version, when the build records one
  revision?          string    the VCS revision (12 hex digits), when the build records it
  go                 string    the Go release that built machping, e.g. "go1.26.0"
  os                 string    GOOS: "darwin", "linux"
  arch               string    GOARCH: "arm64", "amd64"
  ipc                string    what carries Mach messages: "Mach (xnu)", or machport's emulation

selftest (the default command)
  version            string    as in version
  os                 string    as in version
  arch               string    as in version
  ipc                string    as in version
  service            string    the echo service's name, served by the child
  child_pid          int       the child's pid; 0 when it did not start
  pings              [ping]    ping documents: 5 x 56 bytes inline, then 3 x 64 KiB out-of-line
                               (fewer when one failed)
  withdrawn          bool      the name was gone (look-up: 1102) once the child stopped
  port_names_before  int       port names this process held before
  port_names_after   int       port names it held after (0 when not reached)
  passed             bool      every step worked
  failure?           error     why the self-test failed

serve, event "serving" (first, once the name is registered)
  event              string    "serving"
  name               string    the service name
  protocol           string    "cfmessageport", or "raw" (--raw)
  per_pid            bool      registered as a per-PID service (--pid)
  pid                int       this server's pid
  uid                int       this server's effective uid
serve, event "request" (one per request; none with -q)
  event              string    "request"
  pid                int       the sender's pid, from the message's audit trailer
  uid                int       the sender's effective uid
  msgid              int       the CFMessagePort msgid, or the raw msgh_id
  bytes              int       payload bytes; for a raw inline message, its body as Mach carries
                               it, padded to a multiple of 4
  out_of_line        bool      the payload came out-of-line (above 4000 bytes)
  one_way            bool      the request expected no reply
serve, event "withdrawn" (last, after Ctrl-C or SIGTERM; then exit 0)
  event              string    "withdrawn"
  name               string    the service name
  requests           int       requests served (counted with -q too)
  dropped            int       messages dropped unserved: from clients failing --require, or
                               malformed (each logged on stderr)

ping
  name               string    the service name
  pid?               int       the server's pid, for a per-PID service (--pid)
  protocol           string    "cfmessageport", or "raw" (--raw)
  size               int       payload bytes per request (-s)
  out_of_line        bool      size is above 4000 bytes, so payloads travel out-of-line
  replies            [reply]   one per request sent, in order
  transmitted        int       requests sent (one in flight when Ctrl-C came counts, as in
                               ping(8), with its reply lost)
  received           int       correct replies
  loss_percent       number    100 * (transmitted - received) / transmitted, 3 decimals; 0 when
                               none was sent
  rtt                rtt       statistics of the received replies' round trips
  require?           string    --require, as machping reads it (e.g. "uid=501; exe=/bin/x")
  rejected?          rejection the reply that failed --require (the run stopped there; exit 4)
  failure?           error     why the run stopped early (the server died, or was rejected)
  hint?              string    when no request got a reply: what to try (the other protocol)
  reply:
    seq              int       the request's number, from 1 (also its msgid)
    bytes            int       bytes that came back; 0 when none did
    time_ms          number    the round trip; 0 when lost
    from?            sender    who sent the reply, from its audit trailer (missing when lost)
    error?           string    why the reply counts as lost (timeout, wrong data, server died,
                               Ctrl-C before it came)
  rejection:
    seq              int       the request whose reply was rejected (it counts as lost)
    pid              int       the replying process's pid, from the reply's audit trailer
    predicate        string    the predicate it failed, e.g. "uid == 501"
    got?             string    what it has instead, when known, e.g. "uid 502"
  sender:
    pid              int       the replying process's pid
    uid              int       its effective uid
  rtt (all 0 when no reply came):
    count            int       replies measured
    min_ms           number    fastest round trip
    avg_ms           number    mean
    max_ms           number    slowest
    mdev_ms          number    standard deviation, as ping(8)'s mdev
    p50_ms           number    median (nearest rank)
    p99_ms           number    99th percentile (nearest rank)

lookup
  name               string    the service name
  pid?               int       the process whose per-PID service was looked up (--pid)
  found              bool      the name resolved
  right?             right     the send right that came back (released again), when found
  owner_pid?         int       the pid of the process serving the name, when found and known (on
                               Linux from the emulated namespace; launchd does not tell it)
  failure?           error     why not, when not found
  right:
    name             string    the port name in hex, e.g. "0x1103"
    type             string    its rights joined by "+": "send", "receive+send", "send-once",
                               "dead-name", ... ("unknown" when the type could not be read)
    urefs            int       user references, as lsmp's urefs: of the send right or dead name,
                               1 for a send-once right, 0 for a bare receive right or port set

register
  name               string    the service name
  per_pid            bool      probed as this process's per-PID name (--pid)
  sandbox            sandbox   this process's sandbox state
  sandbox_allows     {bool}    the sandbox's answers on this name, keyed "mach-register" and
                               "mach-lookup" (a key is missing when the sandbox did not answer)
  check_in?          probe     bootstrap_check_in: launchd hands over a name a plist declares for
                               this process and makes one nobody serves (missing with --pid)
  register           probe     bootstrap_register2
  may_register       bool      either probe claimed the name
  probe:
    ok               bool      the name was claimed
    withdrawn        bool      and given back afterwards
    failure?         error     why it was not claimed
  sandbox (also in check):
    source           string    where the answers come from: the App Sandbox (sandbox_check,
                               entitlements) or the emulated sandbox (MACHPORT_APP_GROUPS)
    sandboxed        bool      this process is sandboxed
    groups           [string]  its application groups
    error?           string    what could not be determined

check
  name               string    the name checked
  groups             [string]  the application groups it was checked against
  groups_from        string    "flags" (--group), "process" (this process's groups) or "none"
  valid              bool      the name breaks no rule
  rule?              string    the first rule it breaks, by identifier (below)
  detail?            string    what exactly is wrong, in one sentence
  example?           string    a name that would pass, when one can be built
  sandbox            sandbox   this process's sandbox state (see register)
  rule identifiers, in the order they are checked (the last three only against groups):
    empty            the name is empty
    invalid-utf8     the name is not valid UTF-8
    nul              the name contains a NUL byte
    too-long         the name is longer than 127 bytes (launchd's name_t)
    outside-groups   the name does not begin with a group and a period (the sandbox says 1100)
    empty-rest       nothing follows "<group>." (the name is a group, or a group and a period)
    bad-group        an application-group identifier is malformed

rights
  pid                int       the listed process's pid: this one, or --pid's
  self               bool      pid is this process
  ipc                string    as in version
  lookup?            lookup    with --lookup: a lookup document; its right is held while listing
  names              [right]   every name in the process's IPC space (right: see lookup); [] when
                               they cannot be read (a process that serves no table)
  names_complete     bool      names lists the whole IPC space
  why_incomplete?    string    when not: why, and what is listed instead
  services?          [string]  with --pid on Linux: the service names the process serves (from
                               the emulated namespace)
  fds                [fd]      open file descriptors, by number ([] for another process on macOS)
  fd:
    fd               int       the descriptor
    target?          string    what it refers to, where the system says (a readlink)

check-peer (machping check-peer PID EXPR)
  pid                int       the process checked
  uid                int       its effective uid (on Linux from /proc/PID/status)
  gid                int       its effective gid
  requirement        string    EXPR, as machping reads it
  verdicts           [verdict] one per predicate, in the requirement's order (the user, group
                               and pid first, then the executable and code signing)
  pass               bool      every predicate passes (exit 0; else exit 1)
  not_permitted?     bool      a predicate could not be checked: this user may not read the
                               process (its executable); exit 4
  verdict:
    predicate        string    the predicate, e.g. "executable == \"/bin/x\""
    pass             bool      the process meets it
    got?             string    what the process has instead, when known
    error?           string    why it fails

bench
  os                 string    as in version
  arch               string    as in version
  cpus               int       logical CPUs
  ipc                string    as in version
  server_pid         int       the echo server's pid (a child process)
  time_per_case_s    number    measuring time per transport and size (--time), in seconds
  concurrency        int       requesters of each transport at once (--concurrency; 1: one
                               request at a time)
  results            [result]  per size (--sizes), each transport (--transports), in order
  result:
    transport        string    "unix", "raw" or "cfmessageport"
    size             int       payload bytes
    out_of_line      bool      raw or cfmessageport above 4000 bytes: the payload went out-of-line
    requesters       int       requesters measured at once, each with a connection (unix), a
                               reply port (raw) or a Remote (cfmessageport) of its own
    round_trips      int       round trips measured, of all requesters, each after 10 for warm-up
    p50_ms           number    median round trip
    p99_ms           number    99th-percentile round trip
    avg_ms           number    mean round trip
    round_trips_per_s number   round trips per second of all requesters together, from the first
                               measured request to the last reply, a whole number
    mb_per_s         number    payload megabytes (10^6 bytes) per second, one way, 3 decimals
    p50_vs_unix?     number    p50 over unix's p50 at the same size, 2 decimals (missing for
                               unix, and when unix was not measured before this transport)
  interrupted?       bool      Ctrl-C ended the run (exit 2); results holds the cases measured
                               in full before it

bench-server (internal: the first line of the child that 'machping bench' starts)
  event              string    "bench-server"
  pid                int       the child's pid
  raw                string    the raw echo service's name
  cf                 string    the CFMessagePort echo service's name
  unix               string    the Unix socket's path

notify post, notify state (one document)
  action             string    "post" or "state"
  name               string    the notification name
  state?             int       notify state: the name's state, as read (one argument) or as set
                               (two); missing for post

notify watch (one object per line: "watching" once, then one "delivery" per delivery)
  event              string    "watching" when the registration is made, then "delivery"
  name               string    the notification name
  token?             int       delivery: the registration's token
  time?              string    delivery: when it was received, RFC 3339 in UTC
  state              int       delivery: the name's state when it was read (0 for "watching")

error (a command that failed; exit 2 to 5, by cause)
  error              error     the diagnosis, below
  error, the diagnosis (also the "failure" of selftest, ping, lookup and register's probes):
    message          string    what failed, in one sentence
    cause?           string    the library's error text
    code?            int       launchd's code (1100 to 1106) or CFMessagePort's status (-1 to -5)
    code_name?       string    the code's C name: "BOOTSTRAP_UNKNOWN_SERVICE",
                               "kCFMessagePortBecameInvalidError", ...
    rule?            string    for a name that breaks a rule: the rule, in words
    groups?          [string]  for 1100: this process's application groups, when it has any
    example?         string    a name that would pass, when one can be built
    hints?           [string]  what to check or try next
`
