package tftp

import (
	"context"
	"net"
	"net/netip"
	"strconv"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/tinderbox-boot/tinderbox/internal/bind"
)

// arrival is where a request arrived: the address it was sent to and the
// interface it came in on, as the kernel reports them per packet
// (IP_PKTINFO, IPV6_PKTINFO). dst is invalid and ifIndex 0 when the socket
// cannot tell; then dst is the listener's own address when it is bound to
// one.
type arrival struct {
	dst     netip.Addr // unmapped
	ifIndex int
}

// replySource is the address replies to a request sent to dst leave
// from: dst itself, the address the client asked (firmware that hears
// from another address drops the packets: PXE-E32). It is invalid, leaving
// the choice to the kernel's routing (the interface's primary address),
// when dst is not one address of this host: unknown, unspecified,
// multicast, the limited broadcast, or the broadcast address of one of
// ifAddrs, the receiving interface's networks.
func replySource(dst netip.Addr, ifAddrs []netip.Prefix) netip.Addr {
	if !dst.IsValid() || dst.IsUnspecified() || dst.IsMulticast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}
	}
	if dst.Is4() && isSubnetBroadcast(ifAddrs, dst) {
		return netip.Addr{}
	}
	return dst
}

// transferAddr is the local address of a transfer's socket: from with
// port 0 (any free port, the new transfer ID of RFC 1350 §4), zoned to the
// receiving interface when from is link-local IPv6; nil (any address, the
// kernel chooses) when from is invalid.
func transferAddr(from netip.Addr, ifIndex int) *net.UDPAddr {
	if !from.IsValid() {
		return nil
	}
	ua := &net.UDPAddr{IP: from.AsSlice()}
	if from.Is6() && from.IsLinkLocalUnicast() && ifIndex > 0 {
		ua.Zone = strconv.Itoa(ifIndex)
	}
	return ua
}

// isSubnetBroadcast reports whether d is the broadcast address of one of
// the IPv4 networks in addrs (a /31 or /32 has none, RFC 3021).
func isSubnetBroadcast(addrs []netip.Prefix, d netip.Addr) bool {
	for _, p := range addrs {
		if !p.Addr().Is4() || p.Bits() >= 31 {
			continue
		}
		b := p.Addr().As4()
		host := uint32(1)<<(32-p.Bits()) - 1
		for i := range 4 {
			b[i] |= byte(host >> (24 - 8*i))
		}
		if netip.AddrFrom4(b) == d {
			return true
		}
	}
	return false
}

// Listen binds the TFTP server's UDP socket on addr ("host:port"; ":69"
// listens on every address, IPv4 and IPv6) and has the kernel report,
// from then on, each request's destination address and interface
// (IP_PKTINFO, IPV6_PKTINFO), which Serve needs to answer from the
// address the client asked: requests that queue before Serve starts carry
// them too. Where the operating system reports neither, the socket is
// returned as it is. A bind error names the port (bind.Error). The caller
// hands the socket to Serve, or closes it.
func Listen(ctx context.Context, addr string) (net.PacketConn, error) {
	pc, err := bind.UDP(ctx, "TFTP", addr)
	if err != nil {
		return nil, err
	}
	newRequestConn(pc)
	return pc, nil
}

// requestConn is the server port: it reads requests with where they
// arrived and sends error packets from a chosen source address.
type requestConn interface {
	readFrom(b []byte) (int, *net.UDPAddr, arrival, error)
	// writeTo sends b to to from the address from, or from the address
	// the kernel chooses when from is invalid.
	writeTo(b []byte, to *net.UDPAddr, from netip.Addr, ifIndex int) error
}

// newRequestConn wraps the listening socket. On an IPv6 socket (which
// receives IPv4 too unless it is IPv6-only; ":69" is not) it asks for
// IPV6_PKTINFO, which reports an IPv4 packet's destination as an
// IPv4-mapped address; on an IPv4 socket for IP_PKTINFO. A socket that
// cannot report destinations (not UDP, or an operating system without
// either option) reads plainly, and its replies leave from the listener's
// own address when it is bound to one, or from the kernel's choice.
func newRequestConn(conn net.PacketConn) requestConn {
	var bound netip.Addr
	la, _ := conn.LocalAddr().(*net.UDPAddr)
	if la != nil {
		if a, ok := netip.AddrFromSlice(la.IP); ok && !a.IsUnspecified() {
			bound = a.Unmap()
		}
	}
	if la != nil && la.IP.To4() == nil {
		pc := ipv6.NewPacketConn(conn)
		if pc.SetControlMessage(ipv6.FlagDst|ipv6.FlagInterface, true) == nil {
			return v6Conn{pc: pc, pc4: ipv4.NewPacketConn(conn), bound: bound}
		}
	} else if la != nil {
		pc := ipv4.NewPacketConn(conn)
		if pc.SetControlMessage(ipv4.FlagDst|ipv4.FlagInterface, true) == nil {
			return v4Conn{pc: pc, bound: bound}
		}
	}
	return plainConn{conn: conn, bound: bound}
}

// v4Conn is an IPv4 socket with IP_PKTINFO.
type v4Conn struct {
	pc    *ipv4.PacketConn
	bound netip.Addr
}

func (c v4Conn) readFrom(b []byte) (int, *net.UDPAddr, arrival, error) {
	n, cm, src, err := c.pc.ReadFrom(b)
	if err != nil {
		return 0, nil, arrival{}, err
	}
	a := arrival{dst: c.bound}
	// A packet queued before IP_PKTINFO was on comes with its destination
	// but interface 0 (Linux notes the interface as it queues the packet):
	// it counts as unknown, lest a broadcast be answered from.
	if cm != nil && cm.IfIndex > 0 {
		a.ifIndex = cm.IfIndex
		if d, ok := netip.AddrFromSlice(cm.Dst); ok {
			a.dst = d.Unmap()
		}
	}
	ua, _ := src.(*net.UDPAddr)
	return n, ua, a, nil
}

func (c v4Conn) writeTo(b []byte, to *net.UDPAddr, from netip.Addr, _ int) error {
	var cm *ipv4.ControlMessage
	if from.IsValid() {
		// The source alone (ipi_spec_dst): the route still picks the
		// outgoing interface.
		cm = &ipv4.ControlMessage{Src: from.AsSlice()}
	}
	_, err := c.pc.WriteTo(b, cm, to)
	return err
}

// v6Conn is an IPv6 socket, dual-stack or IPv6-only, with IPV6_PKTINFO.
type v6Conn struct {
	pc *ipv6.PacketConn
	// pc4 sends to IPv4 clients of a dual-stack socket: the source goes
	// in an IP_PKTINFO message, which Linux honours on an IPv6 socket
	// sending to an IPv4 address (x/net/ipv6 will not put an IPv4-mapped
	// source in IPV6_PKTINFO).
	pc4   *ipv4.PacketConn
	bound netip.Addr
}

func (c v6Conn) readFrom(b []byte) (int, *net.UDPAddr, arrival, error) {
	n, cm, src, err := c.pc.ReadFrom(b)
	if err != nil {
		return 0, nil, arrival{}, err
	}
	a := arrival{dst: c.bound}
	if cm != nil && cm.IfIndex > 0 { // as for IPv4: an IPv4 packet queued early has interface 0
		a.ifIndex = cm.IfIndex
		if d, ok := netip.AddrFromSlice(cm.Dst); ok && !d.IsUnspecified() {
			a.dst = d.Unmap()
		}
	}
	ua, _ := src.(*net.UDPAddr)
	return n, ua, a, nil
}

func (c v6Conn) writeTo(b []byte, to *net.UDPAddr, from netip.Addr, ifIndex int) error {
	if from.Is4() {
		ap := to.AddrPort()
		_, err := c.pc4.WriteTo(b, &ipv4.ControlMessage{Src: from.AsSlice()}, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())))
		return err
	}
	var cm *ipv6.ControlMessage
	if from.IsValid() {
		cm = &ipv6.ControlMessage{Src: from.AsSlice()}
		if from.IsLinkLocalUnicast() { // a link-local source needs its interface
			cm.IfIndex = ifIndex
		}
	}
	_, err := c.pc.WriteTo(b, cm, to)
	return err
}

// plainConn is a socket that does not report destinations.
type plainConn struct {
	conn  net.PacketConn
	bound netip.Addr
}

func (c plainConn) readFrom(b []byte) (int, *net.UDPAddr, arrival, error) {
	n, src, err := c.conn.ReadFrom(b)
	if err != nil {
		return 0, nil, arrival{}, err
	}
	ua, _ := src.(*net.UDPAddr)
	return n, ua, arrival{dst: c.bound}, nil
}

func (c plainConn) writeTo(b []byte, to *net.UDPAddr, _ netip.Addr, _ int) error {
	_, err := c.conn.WriteTo(b, to)
	return err
}
