//go:build !linux

package proxydhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
)

// Listen would bind the responder's UDP socket. The responder needs
// Linux (SO_BINDTODEVICE for dhcp.interface, IP_PKTINFO to answer from the
// request's interface): elsewhere Listen returns an error, naming the
// listener and port, that matches errors.ErrUnsupported.
func Listen(_ context.Context, what, iface string, port int) (*net.UDPConn, error) {
	where := "port " + strconv.Itoa(port)
	if iface != "" {
		where += " on interface " + iface
	}
	return nil, fmt.Errorf("%s: listen on UDP %s: %w: the proxyDHCP responder is supported on Linux only", what, where, errors.ErrUnsupported)
}

// Sharers would list the other sockets sharing conn's port; it reads
// Linux's sock_diag, so elsewhere it returns an error matching
// errors.ErrUnsupported.
func Sharers(*net.UDPConn) ([]string, error) {
	return nil, fmt.Errorf("proxydhcp: listing the sockets that share a port: %w: supported on Linux only", errors.ErrUnsupported)
}
