package main

import (
	"bytes"
	"net"
	"net/netip"
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
	t   *testing.T
	buf bytes.Buffer
	w   *pcapgo.Writer
}

func newCapture(t *testing.T) *capture {
	t.Helper()
	c := &capture{t: t}
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

func (c *capture) dhcp(at time.Duration, from net.HardwareAddr, src net.IP, chaddr net.HardwareAddr, op layers.DHCPOp, typ layers.DHCPMsgType) {
	c.t.Helper()
	sport, dport := layers.UDPPort(68), layers.UDPPort(67)
	if op == layers.DHCPOpReply {
		sport, dport = 67, 68
	}
	u := &layers.UDP{SrcPort: sport, DstPort: dport}
	d := &layers.DHCPv4{Operation: op, HardwareType: layers.LinkTypeEthernet, HardwareLen: 6, Xid: 7,
		ClientIP: net.IPv4zero, YourClientIP: net.IPv4zero, NextServerIP: net.IPv4zero, RelayAgentIP: net.IPv4zero,
		ClientHWAddr: chaddr, Options: layers.DHCPOptions{layers.NewDHCPOption(layers.DHCPOptMessageType, []byte{byte(typ)})}}
	c.frame(at, &layers.Ethernet{SrcMAC: from, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeIPv4},
		ip4(src, bcastIP, layers.IPProtocolUDP), u, d)
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

func (c *capture) tcp(at time.Duration, toServer bool, cport uint16, payload string) {
	c.t.Helper()
	eth := &layers.Ethernet{SrcMAC: srvMAC, DstMAC: vmMAC, EthernetType: layers.EthernetTypeIPv4}
	ip := ip4(srvIP, vmIP, layers.IPProtocolTCP)
	tcp := &layers.TCP{SrcPort: 8080, DstPort: layers.TCPPort(cport), ACK: true, Window: 1000}
	if toServer {
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
	tests := []struct {
		name  string
		build func(c *capture)
		want  map[string]string // stage → milliseconds, "-" for not seen
	}{
		{
			name: "whole boot with TFTP, two connections",
			build: func(c *capture) {
				c.dhcp(ms(100), vmMAC, net.IPv4zero, vmMAC, layers.DHCPOpRequest, layers.DHCPMsgTypeDiscover)
				c.dhcp(ms(150), routerMAC, router, vmMAC, layers.DHCPOpReply, layers.DHCPMsgTypeOffer)
				c.dhcp(ms(200), srvMAC, srvIP, vmMAC, layers.DHCPOpReply, layers.DHCPMsgTypeOffer)
				c.dhcp(ms(250), srvMAC, srvIP, vmMAC, layers.DHCPOpReply, layers.DHCPMsgTypeOffer) // a second offer is not the first
				c.udp(ms(300), true, 2000, 4011, "pxe request")                                    // not TFTP
				c.udp(ms(310), false, 4011, 2000, "pxe ack")
				c.udp(ms(400), true, 2001, 69, "rrq")
				c.udp(ms(500), false, 50000, 2001, "data")
				c.udp(ms(600), true, 2001, 50000, "ack")
				c.tcp(ms(700), true, 3000, "GET /boot.ipxe HTTP/1.1\r\n\r\n")
				c.tcp(ms(750), false, 3000, "HTTP/1.1 200 OK\r\n\r\n#!ipxe")
				c.tcp(ms(800), true, 3000, "GET /ipxe?mac=52-54-00-00-00-01 HTTP/1.1\r\n\r\n")
				c.tcp(ms(900), false, 3000, "HTTP/1.1 200 OK\r\n\r\nkernel …")
				c.tcp(ms(905), true, 3000, "") // the client's ack: not an answer
				c.tcp(ms(1000), true, 3001, "GET /assets/x/v/kernel-amd64 HTTP/1.1\r\n\r\n")
				c.tcp(ms(1500), false, 3001, "body")
				c.tcp(ms(2000), false, 3001, "body")
				c.tcp(ms(2100), true, 3001, "GET /assets/x/v/initramfs-amd64.xz HTTP/1.1\r\n\r\n")
				c.tcp(ms(3100), false, 3001, "body")
				c.udp(ms(3200), false, 50001, 2002, "later tftp") // after HTTP began: not the iPXE binary
			},
			want: map[string]string{"offer": "100.0", "tftp": "500.0", "script": "800.0", "kernel": "1900.0", "initramfs": "3000.0"},
		},
		{
			name: "no TFTP (iPXE ROM), another machine's traffic ignored",
			build: func(c *capture) {
				c.dhcp(ms(0), otherVM, net.IPv4zero, otherVM, layers.DHCPOpRequest, layers.DHCPMsgTypeDiscover)
				c.dhcp(ms(10), vmMAC, net.IPv4zero, vmMAC, layers.DHCPOpRequest, layers.DHCPMsgTypeDiscover)
				c.dhcp(ms(20), srvMAC, srvIP, otherVM, layers.DHCPOpReply, layers.DHCPMsgTypeOffer)
				c.dhcp(ms(30), vmMAC, net.IPv4zero, vmMAC, layers.DHCPOpRequest, layers.DHCPMsgTypeDiscover) // a retry is not a new start
				c.dhcp(ms(1010), srvMAC, srvIP, vmMAC, layers.DHCPOpReply, layers.DHCPMsgTypeOffer)
				c.tcp(ms(2010), true, 3000, "GET /boot.ipxe HTTP/1.1\r\n\r\n")
				c.tcp(ms(2110), false, 3000, "#!ipxe")
				c.tcp(ms(2210), true, 3000, "GET /kernel-amd64 HTTP/1.1\r\n\r\n")
				c.tcp(ms(2510), false, 3000, "body")
			},
			want: map[string]string{"offer": "1000.0", "tftp": "-", "script": "2100.0", "kernel": "2500.0", "initramfs": "-"},
		},
		{
			name: "no DISCOVER seen: nothing is timed",
			build: func(c *capture) {
				c.dhcp(ms(10), srvMAC, srvIP, vmMAC, layers.DHCPOpReply, layers.DHCPMsgTypeOffer)
				c.tcp(ms(20), true, 3000, "GET /boot.ipxe HTTP/1.1\r\n\r\n")
				c.tcp(ms(30), false, 3000, "#!ipxe")
			},
			want: map[string]string{"offer": "-", "tftp": "-", "script": "-", "kernel": "-", "initramfs": "-"},
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
		})
	}
}

func TestReadNotACapture(t *testing.T) {
	if _, err := Read(bytes.NewReader([]byte("not a pcap file at all")), netip.MustParseAddr("10.9.0.2"), 8080); err == nil {
		t.Fatal("got no error for a file that is not a capture")
	}
}
