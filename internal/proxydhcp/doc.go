// Package proxydhcp is tinderbox's proxyDHCP responder (PXE specification
// 2.1, RFC 2131/2132, RFC 4578): beside the router's DHCP server, which keeps
// handing out addresses, it answers PXE firmware and iPXE with boot
// information only, and never offers an address.
//
// The decision ("which reply does this packet get") is the pure function
// Decide; Server only reads packets, calls Decide and writes replies.
//
// # Server contract
//
// Server keeps the contract all of tinderbox's servers (proxydhcp, tftp,
// httpserver) share:
//
//   - Serve(ctx, conn) blocks until ctx is cancelled, waits for the
//     packets in hand, and returns nil; it returns an error only when the
//     socket fails.
//   - Serve owns the socket it is given and closes it before returning,
//     whatever the outcome, as net/http's Server.Serve does with its
//     listener. The caller closes a socket only if it never calls Serve.
//   - A nil Options.Logger discards logs; nil Options.Metrics counts
//     nothing.
//   - Optional behaviour is an explicit Options field, nil when unused:
//     Policy, Recorder (DHCPSent) and Observer (DHCPObserved). Hooks are
//     named after the protocol and what happened, take the packet's
//     context first, and are called from the reader that took the
//     packet (one of Serve's maxInFlight readers), before it reads
//     another.
//
// Listen, which opens the socket Serve expects, needs Linux
// (SO_BINDTODEVICE, IP_PKTINFO, sock_diag); elsewhere it returns an error
// matching errors.ErrUnsupported.
package proxydhcp
