//go:build linux

package proxydhcp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// stuckRecorder blocks every DHCPSent until release is closed, as a state
// write on a frozen disk would.
type stuckRecorder struct {
	entered chan struct{}
	release chan struct{}
}

func (r *stuckRecorder) DHCPSent(context.Context, Sent) {
	r.entered <- struct{}{}
	<-r.release
}

// TestServeClosesSocketBeforeWaiting: with a handler stuck in its
// Recorder, cancelling Serve closes the socket at once, so the port can be
// bound again (without SO_REUSEPORT, so a leaked socket would refuse it)
// while Serve still waits for the handler; Serve returns once it ends.
func TestServeClosesSocketBeforeWaiting(t *testing.T) {
	conn, err := Listen(t.Context(), "proxyDHCP", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	port := conn.LocalAddr().(*net.UDPAddr).Port
	rec := &stuckRecorder{entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv := New(Options{Config: Config{Advertise: netip.MustParseAddr("127.0.0.1"), HTTPPort: 8080}, Recorder: rec})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	released := false
	defer func() {
		if !released {
			close(rec.release)
		}
		cancel()
		<-done
	}()

	sendRaw(t, &net.UDPAddr{IP: loopback, Port: port}, packet(t, dhcpv4.MessageTypeDiscover, firmware(7)...).ToBytes())
	select {
	case <-rec.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the DISCOVER never reached the recorder")
	}
	cancel()
	var again *net.UDPConn
	for deadline := time.Now().Add(10 * time.Second); again == nil; time.Sleep(10 * time.Millisecond) {
		again, err = net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		if err != nil && time.Now().After(deadline) {
			t.Fatalf("port %d still held while a handler is stuck: %v", port, err)
		}
	}
	again.Close()
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v with a handler still stuck", err)
	default:
	}
	close(rec.release)
	released = true
	if err := <-done; err != nil {
		t.Errorf("Serve: got %v, want nil", err)
	}
	done <- nil // for the deferred wait
}

// TestStuckHookHoldsOneReader: a Recorder stuck on one reply holds only
// the reader that sent it; the next client is still answered.
func TestStuckHookHoldsOneReader(t *testing.T) {
	rec := &stuckRecorder{entered: make(chan struct{}, 1), release: make(chan struct{})}
	conn, _ := serveOn(t, Options{Recorder: rec})
	t.Cleanup(func() { close(rec.release) }) // runs before serveOn's stop, which waits for the readers
	first := exchange(t, conn.LocalAddr(), packet(t, dhcpv4.MessageTypeDiscover, firmware(7)...))
	select {
	case <-rec.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the first DISCOVER never reached the recorder")
	}
	second := exchange(t, conn.LocalAddr(), packet(t, dhcpv4.MessageTypeDiscover, append(firmware(0), dhcpv4.WithHwAddr(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}))...))
	if first.BootFileName != "snponly.efi" || second.BootFileName != "undionly.kpxe" {
		t.Errorf("got files %q and %q, want snponly.efi and undionly.kpxe", first.BootFileName, second.BootFileName)
	}
}

// TestServeNeedsUDP: Serve refuses a socket that is not UDP, and closes it.
func TestServeNeedsUDP(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c2.Close()
	pc := pipePacketConn{c1}
	if err := New(Options{}).Serve(t.Context(), pc); err == nil || !strings.Contains(err.Error(), "not a UDP socket") {
		t.Errorf("got %v, want an error saying it is not a UDP socket", err)
	}
	if _, err := c1.Write([]byte{1}); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("writing to the socket after Serve: got %v, want io.ErrClosedPipe (Serve closes it)", err)
	}
}

// pipePacketConn is a net.PacketConn that is not a UDP socket.
type pipePacketConn struct{ net.Conn }

func (p pipePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := p.Read(b)
	return n, p.RemoteAddr(), err
}

func (p pipePacketConn) WriteTo(b []byte, _ net.Addr) (int, error) { return p.Write(b) }
