package proxydhcp

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// FuzzDecide feeds arbitrary bytes to the packet path (parse, decide,
// encode) and asserts: no panic; a reply parses back; it never carries a
// yiaddr; it always carries options 53, 54 and 60 and the boot file in
// both places; the client's UUID is empty or a canonical SMBIOS UUID. Seeds: testdata/fuzz/FuzzDecide (captured firmware packets,
// written by TestGolden -update) and the packets below.
func FuzzDecide(f *testing.F) {
	for _, mods := range [][]dhcpv4.Modifier{firmware(0), firmware(7), firmware(11), firmware(16), ipxeClient(0), nil} {
		f.Add(packet(f, dhcpv4.MessageTypeDiscover, mods...).ToBytes(), false)
		f.Add(packet(f, dhcpv4.MessageTypeRequest, append(mods, dhcpv4.WithClientIP(net.IPv4(192, 0, 2, 50)))...).ToBytes(), true)
	}
	cfg := testConfig(true)
	f.Fuzz(func(t *testing.T, data []byte, pxePort bool) {
		req, err := dhcpv4.FromBytes(data)
		if err != nil {
			return
		}
		d := Decide(t.Context(), Request{Packet: req, ServerIP: testServer, PXEPort: pxePort}, cfg, nil)
		if d.Client != nil && d.Client.UUID != "" {
			if u, err := machine.ParseUUID(d.Client.UUID); err != nil || u.String() != d.Client.UUID {
				t.Fatalf("client UUID %q is not canonical (%v)", d.Client.UUID, err)
			}
		}
		if d.Reply == nil {
			if d.Reason == "" {
				t.Fatalf("no reply and no reason for\n%s", req.Summary())
			}
			return
		}
		b := d.Reply.ToBytes()
		r, err := dhcpv4.FromBytes(b)
		if err != nil {
			t.Fatalf("reply does not parse back: %v\nrequest:\n%s", err, req.Summary())
		}
		if !r.YourIPAddr.IsUnspecified() {
			t.Fatalf("reply carries yiaddr %v", r.YourIPAddr)
		}
		if mt := r.MessageType(); mt != dhcpv4.MessageTypeOffer && mt != dhcpv4.MessageTypeAck {
			t.Fatalf("reply message type %s, want OFFER or ACK", mt)
		}
		if !r.ServerIdentifier().Equal(testServer) || !r.ServerIPAddr.Equal(testServer) {
			t.Fatalf("reply option 54 %v siaddr %v, want %v", r.ServerIdentifier(), r.ServerIPAddr, testServer)
		}
		if v := r.ClassIdentifier(); v != vendorPXE && v != vendorHTTP {
			t.Fatalf("reply option 60 %q", v)
		}
		if r.BootFileName == "" || r.Options.Get(dhcpv4.OptionBootfileName) != nil || r.BootFileName != d.File {
			t.Fatalf("reply file %q option 67 %q decision %q", r.BootFileName, r.Options.Get(dhcpv4.OptionBootfileName), d.File)
		}
	})
}

// BenchmarkDecideEncode measures the per-packet work past the socket:
// parse, decide, encode.
func BenchmarkDecideEncode(b *testing.B) {
	for _, bc := range []struct {
		name string
		mods []dhcpv4.Modifier
	}{
		{"efi-firmware", firmware(7)},
		{"ipxe", ipxeClient(0)},
		{"not-pxe", nil},
	} {
		pkt := packet(b, dhcpv4.MessageTypeDiscover, bc.mods...).ToBytes()
		cfg := testConfig(false)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, err := dhcpv4.FromBytes(pkt)
				if err != nil {
					b.Fatal(err)
				}
				d := Decide(b.Context(), Request{Packet: req, ServerIP: testServer}, cfg, nil)
				if d.Reply != nil {
					_ = d.Reply.ToBytes()
				}
			}
		})
	}
}
