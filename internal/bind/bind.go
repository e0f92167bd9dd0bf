// Package bind opens tinderbox's listening sockets before any server starts,
// so that a busy or privileged port fails at start-up with the port named.
package bind

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// privilegedHint is added to bind errors for ports below 1024, which need
// root or CAP_NET_BIND_SERVICE on Linux.
const privilegedHint = "run as root, or grant CAP_NET_BIND_SERVICE"

// TCP listens on addr for the server called what ("boot HTTP", "admin").
func TCP(ctx context.Context, what, addr string) (net.Listener, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, Error(what, "tcp", addr, err)
	}
	return ln, nil
}

// UDP listens on addr for the server called what ("TFTP").
func UDP(ctx context.Context, what, addr string) (net.PacketConn, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, Error(what, "udp", addr, err)
	}
	return pc, nil
}

// Error describes a failed bind in one line: the server, the protocol and
// port, the cause in plain words, and a hint where one helps.
func Error(what, network, addr string, err error) error {
	_, port, _ := net.SplitHostPort(addr)
	cause := err
	var hint string
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		cause = errors.New("address already in use (another process holds the port)")
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		cause = errors.New("permission denied")
		if n, perr := strconv.Atoi(port); perr == nil && n > 0 && n < 1024 {
			hint = "; " + privilegedHint
		}
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		cause = errors.New("no interface on this host has that address")
	}
	return &Err{What: what, Network: network, Addr: addr, Port: port, msg: fmt.Sprintf("%s: bind %s port %s (%s): %v%s", what, network, port, addr, cause, hint), cause: err}
}

// Err is a bind failure; Port names the port that could not be bound.
type Err struct {
	What, Network, Addr, Port string
	msg                       string
	cause                     error
}

func (e *Err) Error() string { return e.msg }

// Unwrap returns the operating system's error.
func (e *Err) Unwrap() error { return e.cause }
