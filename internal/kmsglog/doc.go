// Package kmsglog receives the log stream Talos Linux sends when a node
// boots with talos.logging.kernel=tcp://HOST:PORT/ (or udp://HOST:PORT/)
// on its kernel command line, and keeps the last lines of each machine
// for the install console.
//
// # The stream
//
// Read in Talos' source (siderolabs/talos):
// internal/app/machined/pkg/controllers/runtime/kmsg_log_config.go takes
// the URL from the talos.logging.kernel argument (and the KmsgLogConfig
// document); kmsg_log.go in the same directory opens /dev/kmsg once the
// network is up and reads it from its oldest record (siderolabs/go-kmsg's
// reader, without FromTail), so the first connection after boot carries
// the whole kernel ring buffer, then follows it. The kernel log also
// carries machined's own "[talos] …" lines.
// internal/app/machined/pkg/runtime/logging/sender_jsonlines.go encodes
// each message as one JSON object (Go's encoding of a map, so keys in
// sorted order), with a newline after each over TCP and one per
// datagram over UDP:
//
//	{"clock":5123456,"facility":"kern","msg":"[talos] task installTask (1/1): done","priority":"info","seq":1742,"talos-level":"info","talos-time":"2026-05-01T10:48:49.294858021Z"}
//
// The fields:
//   - msg: the message text.
//   - talos-time: when it was logged, RFC 3339 with nanoseconds (for
//     kernel messages, boot time plus clock).
//   - talos-level: zap's level name; kernel priorities emerg to err map
//     to "error", warning to "warn", notice and info to "info".
//   - facility, priority: the syslog names siderolabs/go-kmsg gives the
//     record's facility and priority ("kern", "info").
//   - seq: the kernel's record sequence number, from 0 at each boot.
//   - clock: microseconds since boot.
//
// Service logs (machine.logging.destinations with format json_lines) use
// the same encoding with talos-service instead of the kernel fields, and
// may add the destination's extraTags as further fields, which Parse
// ignores.
//
// Talos keeps one connection open and writes each message with a
// deadline of 5 s; on a write error it closes the connection, waits a
// second and dials again, retrying the message unless part of it was
// sent. Nothing in the stream names the node: the sender is its source
// address, which the daemon binds to a machine.
//
// # Bounds
//
// Whatever a sender does, the receiver's memory stays bounded: one
// buffer of MaxLine bytes per connection (a longer line is cut there and
// the rest discarded up to its newline; see Line.Truncated), MaxConns
// connections in total and MaxConnsPerSource from one address, an idle
// timeout, a token bucket of Rate lines per second and Burst at once per
// address (excess lines are dropped and counted, with one warning a
// minute per address), and MaxSources addresses tracked. A Buffer keeps
// at most Lines lines and Bytes bytes per key and Keys keys.
//
// # Server contract
//
// ServeTCP and ServeUDP keep the contract of tinderbox's other servers:
// each blocks until ctx is cancelled and then returns nil, returns an
// error only when its socket fails, and owns and closes the socket it is
// given. A nil Logger discards, a nil Registerer counts nothing.
package kmsglog
