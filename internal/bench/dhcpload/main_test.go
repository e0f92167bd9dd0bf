//go:build linux

package main

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
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
