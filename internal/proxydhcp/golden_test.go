package proxydhcp

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

var update = flag.Bool("update", false, "rewrite testdata/capture/*.golden and the fuzz seeds taken from the captures")

// The addresses scripts/e2e-dhcp.sh gives tinderbox in its namespace.
var (
	captureServer = net.IPv4(10, 77, 0, 2).To4()
	captureConfig = Config{Advertise: netip.MustParseAddr("10.77.0.2"), HTTPPort: 8080}
)

// TestGolden replays the client packets captured from real firmware
// (scripts/capture-dhcp.sh: QEMU SeaBIOS with its iPXE ROM, OVMF's native
// PXE client and the ipxe.efi it loads) through Decide, and compares every
// reply, byte for byte, with testdata/capture/<vm>.golden.
func TestGolden(t *testing.T) {
	pcaps, err := filepath.Glob("testdata/capture/*.pcap")
	if err != nil || len(pcaps) == 0 {
		t.Fatalf("no captures in testdata/capture (%v): run scripts/capture-dhcp.sh", err)
	}
	for _, file := range pcaps {
		name := strings.TrimSuffix(filepath.Base(file), ".pcap")
		t.Run(name, func(t *testing.T) {
			var out strings.Builder
			var replies int
			for i, u := range clientPackets(t, file) {
				fmt.Fprintf(&out, "## packet %d: %s:%d -> %s:%d\n", i+1, u.src, u.srcPort, u.dst, u.dstPort)
				req, err := dhcpv4.FromBytes(u.payload)
				if err != nil {
					t.Fatalf("packet %d does not parse: %v", i+1, err)
				}
				if *update {
					writeSeed(t, fmt.Sprintf("capture-%s-%d", name, i+1), u.payload, u.dstPort == 4011)
				}
				fmt.Fprintf(&out, "request: %s xid %s from %s vendor %q\n", req.MessageType(), req.TransactionID, req.ClientHWAddr, req.ClassIdentifier())
				d := Decide(t.Context(), Request{Packet: req, ServerIP: captureServer, PXEPort: u.dstPort == 4011}, captureConfig, nil)
				if d.Err != nil {
					t.Fatalf("packet %d: %v", i+1, d.Err)
				}
				if d.Reply == nil {
					fmt.Fprintf(&out, "no reply: %s (%s)\n\n", d.Reason, d.Detail)
					continue
				}
				replies++
				checkReply(t, req, d.Reply, captureServer)
				fmt.Fprintf(&out, "client: arch %d class %s uuid %s ipxe %v\nreply to %s:\n%s\n%s\n",
					uint16(d.Client.ClientArch), d.Client.Firmware.Label(d.Client.HTTPBoot), d.Client.UUID, d.Client.IPXE,
					replyAddr(req, udpPeer(u.src, u.srcPort)), hex.Dump(d.Reply.ToBytes()), d.Reply.Summary())
			}
			if replies == 0 {
				t.Error("no captured packet got a reply")
			}
			golden := strings.TrimSuffix(file, ".pcap") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update)", err)
			}
			if got := out.String(); got != string(want) {
				t.Errorf("replies differ from %s (run with -update if the change is meant):\n%s", golden, firstDiff(got, string(want)))
			}
		})
	}
}

// writeSeed stores a captured packet as a FuzzDecide seed.
func writeSeed(t *testing.T, name string, pkt []byte, pxePort bool) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", "FuzzDecide")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nbool(%v)\n", pkt, pxePort)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got: %s\nwant: %s", i+1, gl, wl)
		}
	}
	return "(no line differs)"
}

// udpPacket is one UDP datagram from a capture.
type udpPacket struct {
	src, dst         net.IP
	srcPort, dstPort int
	payload          []byte
}

// clientPackets returns the capture's datagrams from a DHCP client (port 68,
// or EDK2's 4011) to a server port (67 or 4011).
func clientPackets(t *testing.T, file string) []udpPacket {
	t.Helper()
	all, err := readPcap(file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []udpPacket
	for _, u := range all {
		if (u.srcPort == 68 || u.srcPort == 4011) && (u.dstPort == 67 || u.dstPort == 4011) {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s holds no DHCP client packet", file)
	}
	return out
}

// readPcap reads the IPv4 UDP datagrams of a classic pcap file with
// Ethernet framing, as tcpdump -w writes it.
func readPcap(file string) ([]udpPacket, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, errors.New("shorter than a pcap header")
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("not a pcap file (magic % x)", b[:4])
	}
	if link := bo.Uint32(b[20:]); link != 1 {
		return nil, fmt.Errorf("link type %d, want 1 (Ethernet)", link)
	}
	var out []udpPacket
	for rest := b[24:]; len(rest) > 0; {
		if len(rest) < 16 {
			return nil, errors.New("truncated record header")
		}
		n := int(bo.Uint32(rest[8:]))
		if len(rest) < 16+n {
			return nil, errors.New("truncated record")
		}
		frame := rest[16 : 16+n]
		rest = rest[16+n:]
		if u, ok := parseFrame(frame); ok {
			out = append(out, u)
		}
	}
	return out, nil
}

func parseFrame(f []byte) (udpPacket, bool) {
	if len(f) < 14 {
		return udpPacket{}, false
	}
	etype, ip := binary.BigEndian.Uint16(f[12:]), f[14:]
	if etype == 0x8100 && len(f) >= 18 {
		etype, ip = binary.BigEndian.Uint16(f[16:]), f[18:]
	}
	if etype != 0x0800 || len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != 17 {
		return udpPacket{}, false
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total > len(ip) || ihl+8 > total {
		return udpPacket{}, false
	}
	udp := ip[ihl:total]
	return udpPacket{
		src:     net.IP(append([]byte(nil), ip[12:16]...)),
		dst:     net.IP(append([]byte(nil), ip[16:20]...)),
		srcPort: int(binary.BigEndian.Uint16(udp[0:])),
		dstPort: int(binary.BigEndian.Uint16(udp[2:])),
		payload: udp[8:],
	}, true
}

// udpPeer is a captured packet's source as Serve reads it.
func udpPeer(ip net.IP, port int) netip.AddrPort {
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a.Unmap(), uint16(port))
}
