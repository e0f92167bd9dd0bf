// Command bootstages reads a packet capture of network boots (a pcap file
// as tcpdump -w writes it, Ethernet frames) and prints, for each machine
// MAC it is given, when each stage of its boot ended, in milliseconds from
// the machine's first DHCPDISCOVER:
//
//	MAC offer MS       the boot server's first DHCPOFFER to the MAC
//	MAC tftp MS        the last TFTP packet between the MAC and the server
//	MAC script MS      the last byte of the last script (any HTTP request
//	                   before the kernel's)
//	MAC kernel MS      the last byte of the first kernel download
//	MAC initramfs MS   the last byte of the first initramfs download
//
// MS (one decimal) is "-" for a stage the capture does not show (SeaBIOS with QEMU's
// iPXE ROM has no TFTP stage: the ROM is iPXE already). A request is an
// HTTP GET from the MAC to the server's -port; its bytes are the server's
// TCP payload on that connection until the connection's next GET. The
// kernel is the request whose path contains "kernel", the initramfs the one
// whose path contains "initramfs". The same reading serves tinderbox and
// the anchor stack (dnsmasq + nginx), so scripts/bench-boot.sh compares
// them by one method.
//
// It is a benchmark tool, not part of tinderbox: it lives under internal/
// so that the scripts build it from the module with `go build`.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Stages, in boot order: the names bootstages prints.
var Stages = []string{"offer", "tftp", "script", "kernel", "initramfs"}

func main() {
	server := flag.String("server", "", "the boot server's IPv4 address (proxyDHCP, TFTP and HTTP)")
	port := flag.Int("port", 8080, "the boot server's HTTP port")
	flag.Parse()
	srv, err := netip.ParseAddr(*server)
	if err != nil || flag.NArg() < 2 {
		fmt.Fprintln(os.Stderr, "usage: bootstages -server IP [-port N] CAPTURE.pcap MAC…")
		os.Exit(2)
	}
	var macs []string
	for _, a := range flag.Args()[1:] {
		hw, err := net.ParseMAC(a)
		if err != nil {
			fail(err)
		}
		macs = append(macs, hw.String())
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fail(err)
	}
	defer f.Close()
	got, err := Read(f, srv, uint16(*port))
	if err != nil {
		fail(err)
	}
	for _, m := range macs {
		b := got[m]
		for _, s := range Stages {
			v := "-"
			if d, ok := b.End(s); ok {
				v = formatMillis(d)
			}
			fmt.Printf("%s %s %s\n", m, s, v)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bootstages:", err)
	os.Exit(1)
}

// Boot is what a capture shows of one machine's boot: when it started
// (its first DHCPDISCOVER) and when each stage ended. A zero time is a
// stage not seen.
type Boot struct {
	Start time.Time
	ends  map[string]time.Time
}

// End returns how long after Start the stage ended, and whether both were
// seen.
func (b Boot) End(stage string) (time.Duration, bool) {
	t, ok := b.ends[stage]
	if !ok || b.Start.IsZero() || t.Before(b.Start) {
		return 0, false
	}
	return t.Sub(b.Start), true
}

// request is one HTTP request on a connection.
type request struct {
	path string
	last time.Time // the server's last payload byte for it
}

// machine is the reading of one MAC so far.
type machine struct {
	start, offer, tftp time.Time
	conns              map[uint16]int // client port → index of its current request
	reqs               []request
}

// Read reads a pcap capture and returns each machine's boot, by MAC
// (lower-case, colon-separated). server is the boot server's address,
// port its HTTP port. A frame it cannot decode is skipped; an error is a
// capture it cannot read.
func Read(r io.Reader, server netip.Addr, port uint16) (map[string]Boot, error) {
	pr, err := pcapgo.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("bootstages: read capture: %w", err)
	}
	ms := map[string]*machine{}
	get := func(mac string) *machine {
		m := ms[mac]
		if m == nil {
			m = &machine{conns: map[uint16]int{}}
			ms[mac] = m
		}
		return m
	}
	for {
		data, ci, err := pr.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bootstages: read capture: %w", err)
		}
		frame(gopacket.NewPacket(data, layers.LayerTypeEthernet, gopacket.NoCopy), ci.Timestamp, server, port, get)
	}
	out := map[string]Boot{}
	for mac, m := range ms {
		out[mac] = m.boot()
	}
	return out, nil
}

// frame reads one frame into the machine it concerns.
func frame(p gopacket.Packet, t time.Time, server netip.Addr, port uint16, get func(string) *machine) {
	eth, _ := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	ip, _ := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if eth == nil || ip == nil {
		return
	}
	src, _ := netip.AddrFromSlice(ip.SrcIP.To4())
	dst, _ := netip.AddrFromSlice(ip.DstIP.To4())
	if d, ok := p.Layer(layers.LayerTypeDHCPv4).(*layers.DHCPv4); ok {
		m := get(d.ClientHWAddr.String())
		switch msgType(d) {
		case layers.DHCPMsgTypeDiscover:
			if m.start.IsZero() {
				m.start = t
			}
		case layers.DHCPMsgTypeOffer:
			if src == server && m.offer.IsZero() && !m.start.IsZero() {
				m.offer = t
			}
		}
		return
	}
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		// TFTP: any other UDP between a machine and the server (the
		// transfer runs on ports the two pick).
		if dhcpPort(u.SrcPort) || dhcpPort(u.DstPort) {
			return
		}
		if src == server && !bcast(eth.DstMAC) {
			get(eth.DstMAC.String()).tftpAt(t)
		} else if dst == server {
			get(eth.SrcMAC.String()).tftpAt(t)
		}
		return
	}
	tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		return
	}
	switch {
	case dst == server && uint16(tcp.DstPort) == port && bytes.HasPrefix(tcp.Payload, []byte("GET ")):
		m := get(eth.SrcMAC.String())
		path, _, _ := strings.Cut(string(tcp.Payload[4:]), " ")
		m.conns[uint16(tcp.SrcPort)] = len(m.reqs)
		m.reqs = append(m.reqs, request{path: path})
	case src == server && uint16(tcp.SrcPort) == port && len(tcp.Payload) > 0:
		m := get(eth.DstMAC.String())
		if i, ok := m.conns[uint16(tcp.DstPort)]; ok {
			m.reqs[i].last = t
		}
	}
}

func (m *machine) tftpAt(t time.Time) {
	// Only the transfer before the first HTTP request: the iPXE binary.
	if len(m.reqs) == 0 && !m.start.IsZero() {
		m.tftp = t
	}
}

// boot sums the machine's reading up as stage ends.
func (m *machine) boot() Boot {
	b := Boot{Start: m.start, ends: map[string]time.Time{}}
	set := func(s string, t time.Time) {
		if !t.IsZero() {
			b.ends[s] = t
		}
	}
	set("offer", m.offer)
	set("tftp", m.tftp)
	var script time.Time
	kernel := false
	for _, r := range m.reqs {
		switch {
		case strings.Contains(r.path, "initramfs"):
			if _, seen := b.ends["initramfs"]; !seen {
				set("initramfs", r.last)
			}
		case strings.Contains(r.path, "kernel"):
			if !kernel {
				set("kernel", r.last)
			}
			kernel = true
		case !kernel && r.last.After(script):
			script = r.last
		}
	}
	set("script", script)
	return b
}

func msgType(d *layers.DHCPv4) layers.DHCPMsgType {
	for _, o := range d.Options {
		if o.Type == layers.DHCPOptMessageType && len(o.Data) == 1 {
			return layers.DHCPMsgType(o.Data[0])
		}
	}
	return layers.DHCPMsgTypeUnspecified
}

func bcast(hw net.HardwareAddr) bool {
	return bytes.Equal(hw, layers.EthernetBroadcast)
}

// dhcpPort is a DHCP or PXE boot server port (RFC 2131, PXE 2.1 §2.2.4).
func dhcpPort(p layers.UDPPort) bool {
	return p == 67 || p == 68 || p == 4011
}

// formatMillis prints d in milliseconds with one decimal.
func formatMillis(d time.Duration) string {
	return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond))
}
