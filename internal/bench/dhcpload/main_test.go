//go:build linux

package main

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

// TestRunCounts runs the generator against a responder on loopback that
// answers every DISCOVER with an even transaction ID, twice: the count of
// answered is the number of even IDs, duplicates not counted twice.
func TestRunCounts(t *testing.T) {
	srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFromUDP(buf)
			if err != nil {
				return
			}
			p, err := dhcpv4.FromBytes(buf[:n])
			if err != nil || p.MessageType() != dhcpv4.MessageTypeDiscover || p.ClassIdentifier() == "" {
				continue
			}
			if binary.BigEndian.Uint32(p.TransactionID[:])%2 != 0 {
				continue
			}
			reply, err := dhcpv4.NewReplyFromRequest(p, dhcpv4.WithMessageType(dhcpv4.MessageTypeOffer))
			if err != nil {
				continue
			}
			for range 2 {
				_, _ = srv.WriteToUDP(reply.ToBytes(), from)
			}
		}
	}()
	r, err := run(t.Context(), config{
		to: srv.LocalAddr().String(), listen: "127.0.0.1:0",
		rate: 1000, duration: 100 * time.Millisecond, wait: 2 * time.Second, macs: 7,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.sent != 100 || r.answered != 50 {
		t.Fatalf("got sent=%d answered=%d, want 100 and 50", r.sent, r.answered)
	}
	if r.p50 <= 0 || r.p99 < r.p50 {
		t.Errorf("got p50 %v p99 %v, want 0 < p50 <= p99", r.p50, r.p99)
	}
	// Each reply's kernel stamp comes before the generator reads it.
	if r.p99Read < r.p99 {
		t.Errorf("got p99 %v to the kernel's stamp, %v to the read, want the stamp's no later", r.p99, r.p99Read)
	}
}

// TestReceiveStamp: a socket with SO_TIMESTAMPNS on hands each packet's
// kernel receive time, between the send and the read, to receiveStamp.
func TestReceiveStamp(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rc, err := conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	before := time.Now().UnixNano()
	if _, err := conn.WriteTo([]byte("x"), conn.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	oob := make([]byte, unix.CmsgSpace(sizeofTimespec))
	_, oobn, _, _, err := conn.ReadMsgUDPAddrPort(make([]byte, 16), oob)
	after := time.Now().UnixNano()
	if err != nil {
		t.Fatal(err)
	}
	got, ok := receiveStamp(oob[:oobn])
	if !ok || got < before || got > after {
		t.Errorf("got stamp %d (found %v), want one between %d and %d", got, ok, before, after)
	}
	if _, ok := receiveStamp(nil); ok {
		t.Error("receiveStamp found a stamp in no control message")
	}
}

// TestDiscoversArePXE: the packets are DISCOVERs of distinct MACs with
// the options PXE firmware sends.
func TestDiscoversArePXE(t *testing.T) {
	pkts, err := discovers(1000)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, b := range pkts {
		p, err := dhcpv4.FromBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		if p.MessageType() != dhcpv4.MessageTypeDiscover || p.ClassIdentifier() != "PXEClient:Arch:00007:UNDI:003016" ||
			len(p.ClientArch()) != 1 || len(p.GetOneOption(dhcpv4.OptionClientMachineIdentifier)) != 17 {
			t.Fatalf("not a PXE DISCOVER: %s", p.Summary())
		}
		seen[p.ClientHWAddr.String()] = true
	}
	if len(seen) != 1000 {
		t.Errorf("got %d distinct MACs, want 1000", len(seen))
	}
}
