// Package proxydhcptest holds what the proxyDHCP responder's tests and
// benchmarks in more than one package share.
package proxydhcptest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// Exchange sends the DHCP packet pkt from cli to to and reads the answer
// into buf (at least 1500 bytes), waiting up to 5 s; it fails tb when
// nothing comes or what comes is not a BOOTREPLY (RFC 2131 op 2, at least
// the 240 bytes of the fixed header and magic cookie). n names the packet
// in the failure.
func Exchange(tb testing.TB, cli net.PacketConn, to net.Addr, pkt, buf []byte, n int) {
	tb.Helper()
	if _, err := cli.WriteTo(pkt, to); err != nil {
		tb.Fatal(err)
	}
	if err := cli.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	got, _, err := cli.ReadFrom(buf)
	if err != nil {
		tb.Fatalf("DISCOVER %d: no reply: %v", n, err)
	}
	if got < 240 || buf[0] != byte(dhcpv4.OpcodeBootReply) {
		tb.Fatalf("DISCOVER %d: got %d bytes, op %d, want a BOOTREPLY", n, got, buf[0])
	}
}

// Serve runs serve (a server's Serve on its socket) on a goroutine of its
// own until tb's cleanup, which cancels serve's context, waits for it to
// return and fails tb with what it returned when that is an error.
func Serve(tb testing.TB, serve func(context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	})
}
