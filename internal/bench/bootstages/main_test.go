package main

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

var (
	srvIP   = net.IPv4(10, 9, 0, 2).To4()
	srvMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	vmIP    = net.IPv4(10, 9, 0, 100).To4()
	vmMAC   = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x01}
	otherVM = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x09}
	bcastIP = net.IPv4(255, 255, 255, 255).To4()
	t0      = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

// capture writes frames to a pcap in memory, each at t0 plus its offset.
type capture struct {
	t    testing.TB
	buf  bytes.Buffer
	w    *pcapgo.Writer
	next map[uint16]uint32 // client port → the server's next sequence number
}

func newCapture(t testing.TB) *capture {
	t.Helper()
	c := &capture{t: t, next: map[uint16]uint32{}}
	c.w = pcapgo.NewWriter(&c.buf)
	if err := c.w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *capture) frame(at time.Duration, ls ...gopacket.SerializableLayer) {
	c.t.Helper()
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	for _, l := range ls {
		if n, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			for _, x := range ls {
				if ip, ok := x.(*layers.IPv4); ok {
					if err := n.SetNetworkLayerForChecksum(ip); err != nil {
						c.t.Fatal(err)
					}
				}
			}
		}
	}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		c.t.Fatal(err)
	}
	b := buf.Bytes()
	ci := gopacket.CaptureInfo{Timestamp: t0.Add(at), CaptureLength: len(b), Length: len(b)}
	if err := c.w.WritePacket(ci, b); err != nil {
		c.t.Fatal(err)
	}
}

func ip4(src, dst net.IP, proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src, DstIP: dst}
}

// dhcp writes one DHCP message about chaddr from the station from (at
// src), broadcast, on port 67/68 or, with pxe, the PXE boot-server port
// 4011; opts follow the message type.
func (c *capture) dhcp(at time.Duration, from net.HardwareAddr, src net.IP, chaddr net.HardwareAddr, op layers.DHCPOp, typ layers.DHCPMsgType, pxe bool, opts ...layers.DHCPOption) {
	c.t.Helper()
	sport, dport := layers.UDPPort(68), layers.UDPPort(67)
	if op == layers.DHCPOpReply {
		sport, dport = 67, 68
	}
	if pxe {
		sport, dport = 4011, 4011
	}
	u := &layers.UDP{SrcPort: sport, DstPort: dport}
	d := &layers.DHCPv4{Operation: op, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6, Xid: 7,
		ClientIP: net.IPv4zero, YourClientIP: net.IPv4zero, NextServerIP: net.IPv4zero, RelayAgentIP: net.IPv4zero,
		ClientHWAddr: chaddr, Options: append(layers.DHCPOptions{layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(typ)})}, opts...)}
	c.frame(at, &layers.Ethernet{SrcMAC: from, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeIPv4},
		ip4(src, bcastIP, layers.IPProtocolUDP), u, d)
}

// tftp packets (RFC 1350, RFC 2347): opcode then fields.
func rrq(file string, opts ...string) string {
	return "\x00\x01" + file + "\x00octet\x00" + strings.Join(opts, "\x00") + nul(opts)
}

func oack(opts ...string) string { return "\x00\x06" + strings.Join(opts, "\x00") + nul(opts) }

func data(block int) string {
	return "\x00\x03" + string([]byte{byte(block >> 8), byte(block)}) + "payload"
}

func ack(block int) string { return "\x00\x04" + string([]byte{byte(block >> 8), byte(block)}) }

func tftpError() string { return "\x00\x05\x00\x08option refused\x00" }

func nul(opts []string) string {
	if len(opts) == 0 {
		return ""
	}
	return "\x00"
}

func (c *capture) udp(at time.Duration, toServer bool, sport, dport uint16, payload string) {
	c.t.Helper()
	eth := &layers.Ethernet{SrcMAC: srvMAC, DstMAC: vmMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := ip4(srvIP, vmIP, layers.IPProtocolUDP)
	if toServer {
		eth.SrcMAC, eth.DstMAC = vmMAC, srvMAC
		ip.SrcIP, ip.DstIP = vmIP, srvIP
	}
	c.frame(at, eth, ip, &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}, gopacket.Payload(payload))
}

// tcp writes a segment on the HTTP connection from client port cport; the
// server's segments follow one another in sequence, from 0xfffffff8 so
// that they wrap, and the client's acknowledge all the server sent.
func (c *capture) tcp(at time.Duration, toServer bool, cport uint16, payload string) {
	c.t.Helper()
	seq, ok := c.next[cport]
	if !ok {
		seq = 0xfffffff8
	}
	if !toServer {
		c.next[cport] = seq + uint32(len(payload))
	}
	c.segment(at, toServer, cport, seq, payload)
}

// syn writes the client's SYN opening a connection from cport, whose
// server segments then start again from 0xfffffff8.
func (c *capture) syn(at time.Duration, cport uint16) {
	c.t.Helper()
	delete(c.next, cport)
	eth := &layers.Ethernet{SrcMAC: vmMAC, DstMAC: srvMAC, EthernetType: layers.EthernetTypeIPv4}
	c.frame(at, eth, ip4(vmIP, srvIP, layers.IPProtocolTCP), &layers.TCP{SrcPort: layers.TCPPort(cport), DstPort: 8080, SYN: true, Window: 1000})
}

// resend writes the server's segment at seq again.
func (c *capture) resend(at time.Duration, cport uint16, seq uint32, payload string) {
	c.t.Helper()
	c.segment(at, false, cport, seq, payload)
}

// segment writes one TCP segment: the server's at seq, or the client's
// acknowledging every byte before seq.
func (c *capture) segment(at time.Duration, toServer bool, cport uint16, seq uint32, payload string) {
	c.t.Helper()
	eth := &layers.Ethernet{SrcMAC: srvMAC, DstMAC: vmMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := ip4(srvIP, vmIP, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: 8080, DstPort: layers.TCPPort(cport), Seq: seq, ACK: true, Window: 1000}
	if toServer {
		tcp.Seq, tcp.Ack = 1, seq
		eth.SrcMAC, eth.DstMAC = vmMAC, srvMAC
		ip.SrcIP, ip.DstIP = vmIP, srvIP
		tcp.SrcPort, tcp.DstPort = tcp.DstPort, tcp.SrcPort
	}
	var l []gopacket.SerializableLayer
	l = append(l, eth, ip, tcp)
	if payload != "" {
		l = append(l, gopacket.Payload(payload))
	}
	c.frame(at, l...)
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestRead(t *testing.T) {
	server := netip.MustParseAddr("10.9.0.2")
	router := net.IPv4(10, 9, 0, 1).To4()
	routerMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	req, rep := layers.DHCPOpRequest, layers.DHCPOpReply
	ipxeEncap := layers.NewDHCPOption(optIPXE, []byte{0x13, 0x01, 0x01}) // iPXE's features: "pxeext" (19) = 1
	ipxeClass := layers.NewDHCPOption(optUserClass, []byte("iPXE"))
	tests := []struct {
		name  string
		build func(c *capture)
		want  map[string]string // stage or count → its printed value, "-" for not seen
	}{
		{
			name: "UEFI: firmware DHCP and PXE, tsize probe, windowed TFTP, iPXE's DHCP, HTTP to the config",
			build: func(c *capture) {
				// The firmware's exchange (EDK2): no iPXE options.
				c.dhcp(ms(100), vmMAC, net.IPv4zero, vmMAC, req, layers.DHCPMsgTypeDiscover, false)
				c.dhcp(ms(150), routerMAC, router, vmMAC, rep, layers.DHCPMsgTypeOffer, false)
				c.dhcp(ms(200), srvMAC, srvIP, vmMAC, rep, layers.DHCPMsgTypeOffer, false)
				c.dhcp(ms(250), srvMAC, srvIP, vmMAC, rep, layers.DHCPMsgTypeOffer, false) // a second offer is not the first
				c.dhcp(ms(260), vmMAC, net.IPv4zero, vmMAC, req, layers.DHCPMsgTypeRequest, false)
				c.dhcp(ms(270), routerMAC, router, vmMAC, rep, layers.DHCPMsgTypeAck, false) // the firmware's ACK, not iPXE's
				c.dhcp(ms(280), vmMAC, vmIP, vmMAC, req, layers.DHCPMsgTypeRequest, true)
				c.dhcp(ms(290), srvMAC, srvIP, vmMAC, rep, layers.DHCPMsgTypeAck, true)
				// EDK2's size probe: an OACK, then the client gives up.
				c.udp(ms(300), true, 2001, 69, rrq("snponly.efi", "tsize", "0", "blksize", "1468"))
				c.udp(ms(310), false, 50000, 2001, oack("tsize", "173792", "blksize", "1468"))
				c.udp(ms(320), true, 2001, 50000, tftpError())
				// The transfer: four blocks a window.
				c.udp(ms(400), true, 2002, 69, rrq("snponly.efi", "blksize", "1468", "windowsize", "4"))
				c.udp(ms(410), false, 50001, 2002, oack("blksize", "1468", "windowsize", "4"))
				c.udp(ms(415), true, 2002, 50001, ack(0))
				c.udp(ms(420), false, 50001, 2002, data(1))
				c.udp(ms(430), false, 50001, 2002, data(2))
				c.udp(ms(440), false, 50001, 2002, data(2)) // a retransmission is a packet sent
				c.udp(ms(450), true, 2002, 50001, ack(2))
				// iPXE's exchange: its options, the proxy and PXE requests on 4011.
				c.dhcp(ms(600), vmMAC, net.IPv4zero, vmMAC, req, layers.DHCPMsgTypeDiscover, false, ipxeEncap)
				c.dhcp(ms(610), srvMAC, srvIP, vmMAC, rep, layers.DHCPMsgTypeOffer, false)
				c.dhcp(ms(620), vmMAC, net.IPv4zero, vmMAC, req, layers.DHCPMsgTypeRequest, false, ipxeEncap)
				c.dhcp(ms(630), routerMAC, router, vmMAC, rep, layers.DHCPMsgTypeAck, false)
				c.dhcp(ms(640), vmMAC, vmIP, vmMAC, req, layers.DHCPMsgTypeRequest, true, ipxeEncap)
				c.dhcp(ms(650), srvMAC, srvIP, vmMAC, rep, layers.DHCPMsgTypeAck, true)
				c.tcp(ms(700), true, 3000, "GET /boot.ipxe HTTP/1.1\r\n\r\n")
				c.tcp(ms(750), false, 3000, "HTTP/1.1 200 OK\r\n\r\n#!ipxe")
				c.tcp(ms(800), true, 3000, "GET /ipxe?mac=52-54-00-00-00-01 HTTP/1.1\r\n\r\n")
				c.tcp(ms(900), false, 3000, "HTTP/1.1 200 OK\r\n\r\nkernel …")
				c.tcp(ms(905), true, 3000, "") // the client's ack of the whole answer: the script is done
				c.tcp(ms(1000), true, 3001, "GET /assets/x/v/kernel-amd64 HTTP/1.1\r\n\r\n")
				c.tcp(ms(1500), false, 3001, "body")
				c.tcp(ms(1600), false, 3001, "0123456789")   // crosses the wrap
				c.resend(ms(1700), 3001, 0xfffffffc, "0123") // lost, re-sent: before the wrap
				c.resend(ms(1800), 3001, 0, "456789")        // and after it
				c.tcp(ms(2000), false, 3001, "body")
				c.tcp(ms(2010), true, 3001, "")
				c.tcp(ms(2100), true, 3001, "GET /assets/x/v/initramfs-amd64.xz HTTP/1.1\r\n\r\n")
				c.tcp(ms(3100), false, 3001, "body")
				c.resend(ms(3150), 3001, 6+4, "body")         // never acknowledged (iPXE booted the kernel): the first sending counts
				c.udp(ms(3200), true, 2003, 69, rrq("later")) // after HTTP began: not the iPXE binary
				c.udp(ms(3210), false, 50002, 2003, data(1))
				c.udp(ms(3220), false, 50002, 2003, data(2))
				c.udp(ms(3230), false, 50002, 2003, data(3))
				c.udp(ms(3240), false, 50002, 2003, data(4))
				c.dhcp(ms(3300), routerMAC, router, vmMAC, rep, layers.DHCPMsgTypeAck, false) // the kernel's DHCP: not iPXE's
				c.tcp(ms(4000), true, 3002, "GET /config/52:54:00:00:00:01?token=t HTTP/1.1\r\n\r\n")
				c.tcp(ms(4100), false, 3002, "HTTP/1.1 200 OK\r\n\r\nversion: v1alpha1")
				c.tcp(ms(4150), true, 3002, "")
				c.tcp(ms(4200), true, 3003, "GET /config/52:54:00:00:00:01?token=t HTTP/1.1\r\n\r\n")
				c.tcp(ms(4300), false, 3003, "a second fetch is not the first")
			},
			want: map[string]string{"offer": "100.0", "rrq": "300.0", "tftp": "340.0", "ipxe": "500.0", "ipxedhcp": "550.0",
				"script": "805.0", "kernel": "1910.0", "initramfs": "3000.0", "config": "4050.0",
				"tftpdata": "3", "blksize": "1468", "windowsize": "4", "retrans": "3"},
		},
		{
			name: "TFTP without options: the protocol's defaults",
			build: func(c *capture) {
				c.dhcp(ms(0), vmMAC, net.IPv4zero, vmMAC, req, layers.DHCPMsgTypeDiscover, false)
				c.dhcp(ms(10), srvMAC, srvIP, vmMAC, rep, layers.DHCPMsgTypeOffer, false)
				c.udp(ms(100), true, 2001, 69, rrq("undionly.kpxe"))
				c.udp(ms(110), false, 50000, 2001, data(1))
				c.udp(ms(120), true, 2001, 50000, ack(1))
				c.udp(ms(130), false, 50000, 2001, data(2))
				c.udp(ms(140), true, 2001, 50000, ack(2))
				c.udp(ms(150), true, 2002, 69, rrq("autoexec.ipxe"))
				c.udp(ms(160), false, 50001, 2002, "\x00\x05\x00\x01not found\x00") // iPXE's look for a file not there
			},
			want: map[string]string{"offer": "10.0", "rrq": "100.0", "tftp": "130.0", "ipxe": "-", "ipxedhcp": "-", "script": "-",
				"kernel": "-", "initramfs": "-", "config": "-",
				"tftpdata": "2", "blksize": "512", "windowsize": "1", "retrans": "-"},
		},
		{
			name: "BIOS with iPXE's ROM: no TFTP, the first exchange is iPXE's, another machine ignored",
			build: func(c *capture) {
				c.dhcp(ms(0), otherVM, net.IPv4zero, otherVM, req, layers.DHCPMsgTypeDiscover, false, ipxeClass)
				c.dhcp(ms(10), vmMAC, net.IPv4zero, vmMAC, req, layers.DHCPMsgTypeDiscover, false, ipxeClass)
				c.dhcp(ms(20), srvMAC, srvIP, otherVM, rep, layers.DHCPMsgTypeOffer, false)
				c.dhcp(ms(30), vmMAC, net.IPv4zero, vmMAC, req, layers.DHCPMsgTypeDiscover, false, ipxeClass) // a retry is not a new start
				c.dhcp(ms(1010), srvMAC, srvIP, vmMAC, rep, layers.DHCPMsgTypeOffer, false)
				c.dhcp(ms(1110), routerMAC, router, vmMAC, rep, layers.DHCPMsgTypeAck, false)
				c.dhcp(ms(1120), routerMAC, router, otherVM, rep, layers.DHCPMsgTypeAck, false)
				c.tcp(ms(2010), true, 3000, "GET /boot.ipxe HTTP/1.1\r\n\r\n")
				c.tcp(ms(2110), false, 3000, "#!ipxe")
				c.tcp(ms(2210), true, 3000, "GET /kernel-amd64 HTTP/1.1\r\n\r\n")
				c.tcp(ms(2510), false, 3000, "body")
			},
			want: map[string]string{"offer": "1000.0", "rrq": "-", "tftp": "-", "ipxe": "0.0", "ipxedhcp": "1100.0", "script": "2200.0",
				"kernel": "2500.0", "initramfs": "-", "config": "-",
				"tftpdata": "-", "blksize": "-", "windowsize": "-", "retrans": "0"},
		},
		{
			name: "no DISCOVER seen: nothing is timed",
			build: func(c *capture) {
				c.dhcp(ms(10), srvMAC, srvIP, vmMAC, rep, layers.DHCPMsgTypeOffer, false)
				c.udp(ms(15), true, 2001, 69, rrq("snponly.efi"))
				c.udp(ms(16), false, 50000, 2001, data(1))
				c.tcp(ms(20), true, 3000, "GET /boot.ipxe HTTP/1.1\r\n\r\n")
				c.tcp(ms(30), false, 3000, "#!ipxe")
			},
			want: map[string]string{"offer": "-", "rrq": "-", "tftp": "-", "ipxe": "-", "ipxedhcp": "-", "script": "-",
				"kernel": "-", "initramfs": "-", "config": "-",
				"tftpdata": "-", "blksize": "-", "windowsize": "-", "retrans": "-"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCapture(t)
			tt.build(c)
			got, err := Read(&c.buf, server, 8080)
			if err != nil {
				t.Fatal(err)
			}
			b := got[vmMAC.String()]
			for _, s := range Stages {
				v := "-"
				if d, ok := b.End(s); ok {
					v = formatMillis(d)
				}
				if v != tt.want[s] {
					t.Errorf("%s: got %s, want %s", s, v, tt.want[s])
				}
			}
			for _, n := range Counts {
				v := "-"
				if x, ok := b.Count(n); ok {
					v = strconv.Itoa(x)
				}
				if v != tt.want[n] {
					t.Errorf("%s: got %s, want %s", n, v, tt.want[n])
				}
			}
		})
	}
}

func TestReadNotACapture(t *testing.T) {
	if _, err := Read(bytes.NewReader([]byte("not a pcap file at all")), netip.MustParseAddr("10.9.0.2"), 8080); err == nil {
		t.Fatal("got no error for a file that is not a capture")
	}
}

// FuzzRead feeds one arbitrary frame, between a machine's DISCOVER and
// its whole UEFI boot, to Read: it must read the capture, and no stage may
// end before the boot started or before the stage it follows in a
// transfer (the TFTP request before its last DATA packet), whatever the
// frame holds.
func FuzzRead(f *testing.F) {
	seed := newCapture(f)
	seed.udp(0, false, 50000, 2001, oack("blksize", "1468", "windowsize", "4"))
	seed.dhcp(0, vmMAC, net.IPv4zero, vmMAC, layers.DHCPOpRequest, layers.DHCPMsgTypeDiscover, true, layers.NewDHCPOption(optIPXE, []byte{1}))
	seed.tcp(0, false, 3000, "HTTP/1.1 200 OK\r\n\r\n")
	r, err := pcapgo.NewReader(&seed.buf)
	if err != nil {
		f.Fatal(err)
	}
	for {
		data, _, err := r.ReadPacketData()
		if err != nil {
			break
		}
		f.Add(data)
	}
	server := netip.MustParseAddr("10.9.0.2")
	f.Fuzz(func(t *testing.T, frame []byte) {
		c := newCapture(t)
		c.dhcp(ms(10), vmMAC, net.IPv4zero, vmMAC, layers.DHCPOpRequest, layers.DHCPMsgTypeDiscover, false)
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(ms(20)), CaptureLength: len(frame), Length: len(frame)}
		if err := c.w.WritePacket(ci, frame); err != nil {
			t.Fatal(err)
		}
		c.udp(ms(30), true, 2001, 69, rrq("snponly.efi"))
		c.udp(ms(40), false, 50000, 2001, data(1))
		c.dhcp(ms(50), vmMAC, net.IPv4zero, vmMAC, layers.DHCPOpRequest, layers.DHCPMsgTypeDiscover, false, layers.NewDHCPOption(optIPXE, []byte{1}))
		c.syn(ms(55), 3000)
		c.tcp(ms(60), true, 3000, "GET /kernel HTTP/1.1\r\n\r\n")
		c.tcp(ms(70), false, 3000, "body")
		got, err := Read(&c.buf, server, 8080)
		if err != nil {
			t.Fatalf("got %v reading a valid capture", err)
		}
		for mac, b := range got {
			for _, s := range Stages {
				if d, ok := b.End(s); ok && d < 0 {
					t.Errorf("%s %s: got %v, before the boot started", mac, s, d)
				}
			}
			rrq, ok1 := b.End("rrq")
			last, ok2 := b.End("tftp")
			if ok1 != ok2 || last < rrq {
				t.Errorf("%s: TFTP request at %v (%v), last DATA at %v (%v)", mac, rrq, ok1, last, ok2)
			}
		}
		if _, ok := got[vmMAC.String()].End("kernel"); !ok {
			t.Errorf("the kernel stage is gone")
		}
	})
}
