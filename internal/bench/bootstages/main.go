// Command bootstages reads a packet capture of network boots (a pcap file
// as tcpdump -w writes it, Ethernet frames) and prints, for each machine
// MAC it is given, when each stage of its boot ended, in milliseconds from
// the machine's first DHCPDISCOVER:
//
//	MAC offer MS       the boot server's first DHCPOFFER to the MAC
//	MAC rrq MS         the read request that starts the TFTP transfer
//	                   below (the firmware is done with DHCP and PXE)
//	MAC tftp MS        the last TFTP DATA packet of the machine's largest
//	                   TFTP transfer before its first HTTP request (the
//	                   iPXE binary its firmware loads)
//	MAC ipxe MS        iPXE's first DHCPDISCOVER (the first one carrying
//	                   iPXE's option 175 or its user class "iPXE"): iPXE
//	                   has started
//	MAC ipxedhcp MS    the last DHCPACK to the MAC (port 68 or 4011, from
//	                   any server) after that DISCOVER and before the
//	                   first HTTP request: iPXE's DHCP is done
//	MAC script MS      the last byte of the last script (any HTTP request
//	                   before the kernel's)
//	MAC kernel MS      the last byte of the first kernel download
//	MAC initramfs MS   the last byte of the first initramfs download
//	MAC config MS      the last byte of the first machine-config download
//
// and then what the TFTP server granted for that transfer:
//
//	MAC tftpdata N     DATA packets the server sent (retransmissions included)
//	MAC blksize N      the block size in bytes: the server's OACK, else 512
//	                   (RFC 1350, RFC 2348)
//	MAC windowsize N   blocks per ACK: the server's OACK, else 1 (RFC 7440)
//
// and how many TCP segments with payload the server sent again on the
// MAC's HTTP connections (a segment ending at or before the highest
// sequence number it had sent there), over the whole boot:
//
//	MAC retrans N      segments re-sent: losses the server repaired
//
// A value is "-" when the capture does not show it (SeaBIOS with QEMU's
// iPXE ROM has no TFTP stage: the ROM is iPXE already, and its first DHCP
// exchange is iPXE's). A request is an HTTP GET from the MAC to the
// server's -port; its answer is the server's new TCP payload on that
// connection until the connection's next GET, and its "last byte" is
// the client's first acknowledgement of the answer's end (else, when the
// client never acknowledged it, the server's first sending of it:
// retransmissions after the client has gone do not stretch a stage). The
// kernel is the request whose path contains "kernel", the initramfs the
// one whose path contains "initramfs", the config the first one after the
// kernel whose path contains "config". The same reading serves tinderbox and the anchor
// stack (dnsmasq + nginx), so scripts/bench-boot.sh compares them by one
// method.
//
// It is a benchmark tool, not part of tinderbox: it lives under internal/
// so that the scripts build it from the module with `go build`.
package main

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Stages, in boot order: the names bootstages prints with a time.
var Stages = []string{"offer", "rrq", "tftp", "ipxe", "ipxedhcp", "script", "kernel", "initramfs", "config"}

// Counts are the names bootstages prints with a number after the stages:
// what the TFTP server granted for the iPXE transfer, and the HTTP
// segments the server re-sent.
var Counts = []string{"tftpdata", "blksize", "windowsize", "retrans"}

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
		for _, c := range Counts {
			v := "-"
			if n, ok := b.Count(c); ok {
				v = strconv.Itoa(n)
			}
			fmt.Printf("%s %s %s\n", m, c, v)
		}
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bootstages:", err)
	os.Exit(1)
}

// Boot is what a capture shows of one machine's boot: when it started
// (its first DHCPDISCOVER), when each stage ended, and the TFTP transfer
// of iPXE (zero when there was none).
type Boot struct {
	Start    time.Time
	TFTP     Transfer
	Retrans  int // TCP segments the HTTP server sent again
	ends     map[string]time.Time
	requests int // HTTP requests seen
}

// Transfer is one TFTP read as the capture shows it: its read request's
// time, the DATA packets the server sent, the last one's time, and the
// options its OACK granted (0: not granted, so the protocol's default
// holds).
type Transfer struct {
	Request    time.Time
	Data       int
	Last       time.Time
	BlkSize    int // bytes (RFC 2348)
	WindowSize int // blocks (RFC 7440)
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

// Count returns one of Counts: for the boot's TFTP transfer, with the
// protocol's default for an option the server did not grant (blksize
// 512, RFC 1350; windowsize 1, RFC 7440), and false when the boot had no
// TFTP transfer; retrans, false when the boot made no HTTP request.
func (b Boot) Count(name string) (int, bool) {
	if name == "retrans" {
		return b.Retrans, !b.Start.IsZero() && b.requests > 0
	}
	if b.TFTP.Data == 0 {
		return 0, false
	}
	switch name {
	case "tftpdata":
		return b.TFTP.Data, true
	case "blksize":
		return cmp.Or(b.TFTP.BlkSize, 512), true
	case "windowsize":
		return cmp.Or(b.TFTP.WindowSize, 1), true
	}
	return 0, false
}

// request is one HTTP request on a connection and its answer.
type request struct {
	path  string
	last  time.Time // the server's last new payload byte for it
	end   uint32    // the sequence number after that byte
	acked time.Time // the client's first acknowledgement of end
}

// done is when the client had the whole answer: its acknowledgement of
// the last byte, or, when it never sent one (iPXE may hand over to the
// kernel first), the server's first sending of that byte.
func (r request) done() time.Time {
	if !r.acked.IsZero() {
		return r.acked
	}
	return r.last
}

// machine is the reading of one MAC so far.
type machine struct {
	start, offer  time.Time
	ipxe, ipxeAck time.Time            // iPXE's first DISCOVER, its exchange's last ACK
	tftp          map[uint16]*Transfer // client port (its TID) → transfer
	conns         map[uint16]int       // client port → index of its current request
	reqs          []request
	sent          map[uint16]uint32 // client port → the end of the server's highest segment
	retrans       int
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
			m = &machine{tftp: map[uint16]*Transfer{}, conns: map[uint16]int{}, sent: map[uint16]uint32{}}
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
	if u, ok := p.Layer(layers.LayerTypeUDP).(*layers.UDP); ok {
		if dhcpPort(u.SrcPort) || dhcpPort(u.DstPort) {
			dhcp(u, t, src == server, get)
			return
		}
		// TFTP: any other UDP between a machine and the server (the
		// transfer runs on ports the two pick).
		if src == server && !bcast(eth.DstMAC) {
			get(eth.DstMAC.String()).tftpFromServer(t, uint16(u.DstPort), u.Payload)
		} else if dst == server {
			get(eth.SrcMAC.String()).tftpFromClient(t, uint16(u.SrcPort), u.Payload)
		}
		return
	}
	tcp, ok := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if !ok {
		return
	}
	switch {
	case dst == server && uint16(tcp.DstPort) == port:
		m := get(eth.SrcMAC.String())
		c := uint16(tcp.SrcPort)
		if tcp.SYN {
			m.connect(c)
			return
		}
		// The acknowledgement first: a GET on a kept-alive connection
		// acknowledges the answer before it.
		if i, ok := m.conns[c]; ok && tcp.ACK {
			r := &m.reqs[i]
			if !r.last.IsZero() && r.acked.IsZero() && int32(tcp.Ack-r.end) >= 0 {
				r.acked = t
			}
		}
		if bytes.HasPrefix(tcp.Payload, []byte("GET ")) {
			path, _, _ := strings.Cut(string(tcp.Payload[4:]), " ")
			m.conns[c] = len(m.reqs)
			m.reqs = append(m.reqs, request{path: path})
		}
	case src == server && uint16(tcp.SrcPort) == port && (len(tcp.Payload) > 0 || tcp.SYN):
		m := get(eth.DstMAC.String())
		c := uint16(tcp.DstPort)
		if tcp.SYN {
			m.connect(c)
			return
		}
		// Sequence numbers wrap (RFC 793 §3.3): compare by difference.
		end := tcp.Seq + uint32(len(tcp.Payload))
		if top, ok := m.sent[c]; ok && int32(end-top) <= 0 {
			m.retrans++
			return
		}
		m.sent[c] = end
		if i, ok := m.conns[c]; ok {
			r := &m.reqs[i]
			r.last, r.end, r.acked = t, end, time.Time{}
		}
	}
}

// connect forgets what was seen on the client port cport: a SYN starts a
// new connection there, with sequence numbers of its own.
func (m *machine) connect(cport uint16) {
	delete(m.conns, cport)
	delete(m.sent, cport)
}

// dhcp reads one DHCP or PXE boot-server message (gopacket decodes only
// ports 67 and 68 as DHCP, so the payload is decoded here for 4011 too).
func dhcp(u *layers.UDP, t time.Time, fromServer bool, get func(string) *machine) {
	var d layers.DHCPv4
	if err := d.DecodeFromBytes(u.Payload, gopacket.NilDecodeFeedback); err != nil {
		return
	}
	m := get(d.ClientHWAddr.String())
	switch msgType(&d) {
	case layers.DHCPMsgTypeDiscover:
		if m.start.IsZero() {
			m.start = t
		}
		if m.ipxe.IsZero() && fromIPXE(&d) {
			m.ipxe = t
		}
	case layers.DHCPMsgTypeOffer:
		if fromServer && m.offer.IsZero() && !m.start.IsZero() {
			m.offer = t
		}
	case layers.DHCPMsgTypeAck:
		if !m.ipxe.IsZero() && len(m.reqs) == 0 {
			m.ipxeAck = t
		}
	}
}

// fromIPXE reports whether a DISCOVER is iPXE's: iPXE sends its
// encapsulated options (175) and the user class "iPXE" (77) in every
// request (ipxe.org/cfg); PXE firmware sends neither.
func fromIPXE(d *layers.DHCPv4) bool {
	for _, o := range d.Options {
		if o.Type == optIPXE || (o.Type == optUserClass && bytes.Contains(o.Data, []byte("iPXE"))) {
			return true
		}
	}
	return false
}

// iPXE's encapsulated option space (175), and the user class (RFC 3004),
// which gopacket does not name.
const (
	optIPXE      layers.DHCPOpt = 175
	optUserClass layers.DHCPOpt = 77
)

// TFTP opcodes (RFC 1350 §5, RFC 2347 for OACK).
const (
	tftpRRQ  = 1
	tftpDATA = 3
	tftpOACK = 6
)

// tftpFromClient reads a client's packet: a read request starts a
// transfer on the client's port. Only transfers before the first HTTP
// request count: the iPXE binary.
func (m *machine) tftpFromClient(t time.Time, cport uint16, b []byte) {
	if len(b) < 2 || binary.BigEndian.Uint16(b) != tftpRRQ || len(m.reqs) > 0 || m.start.IsZero() {
		return
	}
	m.tftp[cport] = &Transfer{Request: t}
}

// tftpFromServer reads a server's packet to the client's port cport.
func (m *machine) tftpFromServer(t time.Time, cport uint16, b []byte) {
	x := m.tftp[cport]
	if x == nil || len(b) < 2 || len(m.reqs) > 0 {
		return
	}
	switch binary.BigEndian.Uint16(b) {
	case tftpDATA:
		x.Data++
		x.Last = t
	case tftpOACK:
		// NUL-terminated name and value pairs, names case-insensitive
		// (RFC 2347).
		f := strings.Split(string(b[2:]), "\x00")
		for i := 0; i+1 < len(f); i += 2 {
			n, err := strconv.Atoi(f[i+1])
			if err != nil {
				continue
			}
			switch strings.ToLower(f[i]) {
			case "blksize":
				x.BlkSize = n
			case "windowsize":
				x.WindowSize = n
			}
		}
	}
}

// boot sums the machine's reading up as stage ends.
func (m *machine) boot() Boot {
	b := Boot{Start: m.start, Retrans: m.retrans, requests: len(m.reqs), ends: map[string]time.Time{}}
	set := func(s string, t time.Time) {
		if !t.IsZero() {
			b.ends[s] = t
		}
	}
	set("offer", m.offer)
	// The largest transfer is iPXE's: EDK2 first asks for the file's size
	// alone (an RRQ with tsize, abandoned after the OACK), and iPXE may
	// ask for files that are not there.
	for _, x := range m.tftp {
		if x.Data > b.TFTP.Data {
			b.TFTP = *x
		}
	}
	if b.TFTP.Data > 0 {
		set("rrq", b.TFTP.Request)
		set("tftp", b.TFTP.Last)
	}
	set("ipxe", m.ipxe)
	set("ipxedhcp", m.ipxeAck)
	var script time.Time
	kernel := false
	for _, r := range m.reqs {
		switch {
		case strings.Contains(r.path, "initramfs"):
			if _, seen := b.ends["initramfs"]; !seen {
				set("initramfs", r.done())
			}
		case strings.Contains(r.path, "kernel"):
			if !kernel {
				set("kernel", r.done())
			}
			kernel = true
		case !kernel && r.done().After(script):
			script = r.done()
		case kernel && strings.Contains(r.path, "config"):
			if _, seen := b.ends["config"]; !seen {
				set("config", r.done())
			}
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
