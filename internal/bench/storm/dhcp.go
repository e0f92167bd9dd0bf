package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// DHCP option codes the PXE and iPXE clients send that dhcpv4 has no
// modifier for.
const (
	optArch       = dhcpv4.GenericOptionCode(93)  // client system architecture (RFC 4578 §2.1)
	optNDI        = dhcpv4.GenericOptionCode(94)  // client network device interface (RFC 4578 §2.2)
	optUUID       = dhcpv4.GenericOptionCode(97)  // client machine identifier (RFC 4578 §2.3)
	optIPXEEncap  = dhcpv4.GenericOptionCode(175) // iPXE's encapsulated options (iPXE's dhcp.h)
	archEFIx64    = 7
	vendorFW      = "PXEClient:Arch:00007:UNDI:003016" // EDK2's option 60
	vendorIPXE    = "PXEClient:Arch:00007:UNDI:003010" // iPXE's option 60
	ipxeUserClass = "iPXE"
)

// relay is the storm's DHCP relay agent: one socket on port 67 of the
// relay address, through which every node's broadcast DHCP goes to the
// server and every answer comes back (to giaddr:67), matched by xid.
type relay struct {
	conn   *net.UDPConn
	addr   netip.Addr
	mu     sync.Mutex
	wait   map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4
	doneWG sync.WaitGroup
}

func listenRelay(addr netip.Addr) (*relay, error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, dhcpv4.ServerPort)))
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	// A storm's answers arrive in bursts; the default receive buffer
	// (about 200 KiB) would drop some before they are read.
	_ = c.SetReadBuffer(8 << 20)
	r := &relay{conn: c, addr: addr, wait: map[dhcpv4.TransactionID]chan *dhcpv4.DHCPv4{}}
	r.doneWG.Add(1)
	go r.read()
	return r, nil
}

func (r *relay) read() {
	defer r.doneWG.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			continue
		}
		r.mu.Lock()
		ch := r.wait[p.TransactionID]
		r.mu.Unlock()
		if ch != nil {
			select {
			case ch <- p:
			default:
			}
		}
	}
}

func (r *relay) close() {
	r.conn.Close()
	r.doneWG.Wait()
}

// send forwards p to port 67 of every server as the relay does: giaddr
// set, one hop.
func (r *relay) send(p *dhcpv4.DHCPv4, servers []netip.Addr) error {
	p.GatewayIPAddr = r.addr.AsSlice()
	p.HopCount = 1
	b := p.ToBytes()
	for _, s := range servers {
		if _, err := r.conn.WriteToUDP(b, net.UDPAddrFromAddrPort(netip.AddrPortFrom(s, dhcpv4.ServerPort))); err != nil {
			return err
		}
	}
	return nil
}

// exchange relays p to every server and waits for the first answer with
// its xid (a later one is dropped), sending p again every timeout,
// retries times. It returns the answer and how often p was sent again.
func (r *relay) exchange(ctx context.Context, p *dhcpv4.DHCPv4, servers []netip.Addr, timeout time.Duration, retries int) (*dhcpv4.DHCPv4, int, error) {
	ch := make(chan *dhcpv4.DHCPv4, 1)
	r.mu.Lock()
	r.wait[p.TransactionID] = ch
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.wait, p.TransactionID)
		r.mu.Unlock()
	}()
	return retry(ctx, timeout, retries, func() error { return r.send(p, servers) }, ch)
}

// retry sends with send and waits for an answer on ch, again and again.
func retry(ctx context.Context, timeout time.Duration, retries int, send func() error, ch <-chan *dhcpv4.DHCPv4) (*dhcpv4.DHCPv4, int, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for try := 0; ; try++ {
		if err := send(); err != nil {
			return nil, try, err
		}
		t.Reset(timeout)
		select {
		case p := <-ch:
			return p, try, nil
		case <-ctx.Done():
			return nil, try, ctx.Err()
		case <-t.C:
		}
		if try == retries {
			return nil, try, fmt.Errorf("%w after %d tries of %s", errNoAnswer, try+1, timeout)
		}
	}
}

// packet is one of node n's DHCP packets: firmware (EDK2) or iPXE.
func (n *node) packet(mt dhcpv4.MessageType, xid dhcpv4.TransactionID, ipxe bool, mods ...dhcpv4.Modifier) (*dhcpv4.DHCPv4, error) {
	uuid := nodeUUID(n.i)
	vendor := vendorFW
	if ipxe {
		vendor = vendorIPXE
	}
	base := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(mt),
		dhcpv4.WithHwAddr(nodeMAC(n.i)),
		dhcpv4.WithTransactionID(xid),
		dhcpv4.WithBroadcast(true),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier(vendor)),
		dhcpv4.WithGeneric(optArch, []byte{0, archEFIx64}),
		dhcpv4.WithGeneric(optNDI, []byte{1, 3, 16}),
		dhcpv4.WithGeneric(optUUID, append([]byte{0}, uuid[:]...)),
		dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionBootfileName,
			dhcpv4.OptionTFTPServerName, dhcpv4.OptionVendorSpecificInformation, dhcpv4.OptionClassIdentifier),
	}
	if ipxe {
		base = append(base, dhcpv4.WithUserClass(ipxeUserClass, false),
			dhcpv4.WithGeneric(optIPXEEncap, []byte{0xb1, 0x01, 0x01})) // 177: bus id present
	}
	return dhcpv4.New(append(base, mods...)...)
}

// xid is node n's transaction ID for its k-th exchange, unique in the
// storm.
func (n *node) xid(k byte) dhcpv4.TransactionID {
	return dhcpv4.TransactionID{k, byte(n.i >> 16), byte(n.i >> 8), byte(n.i)}
}

// discover relays a DISCOVER and returns the first proxy OFFER's boot
// file and the server it names, then relays the REQUEST for the router's
// lease, which the servers only observe (it is the binding evidence for
// the node's address).
func (n *node) discover(ctx context.Context, k byte, ipxe bool) (string, netip.Addr, int, error) {
	var none netip.Addr
	p, err := n.packet(dhcpv4.MessageTypeDiscover, n.xid(k), ipxe)
	if err != nil {
		return "", none, 0, err
	}
	offer, retries, err := n.relay.exchange(ctx, p, n.o.servers, n.o.timeout, n.o.retries)
	if err != nil {
		return "", none, retries, fmt.Errorf("DISCOVER: %w", err)
	}
	if offer.MessageType() != dhcpv4.MessageTypeOffer {
		return "", none, retries, fmt.Errorf("DISCOVER answered with %s", offer.MessageType())
	}
	file := bootFile(offer)
	if file == "" {
		return "", none, retries, fmt.Errorf("OFFER without a boot file")
	}
	server, ok := netip.AddrFromSlice(offer.ServerIdentifier().To4())
	if !ok {
		return "", none, retries, fmt.Errorf("OFFER without a server identifier")
	}
	req, err := n.packet(dhcpv4.MessageTypeRequest, n.xid(k+1), ipxe,
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(nodeAddr(n.o.nodes, n.i).AsSlice())),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(n.o.router.AsSlice())))
	if err != nil {
		return "", none, retries, err
	}
	if err := n.relay.send(req, n.o.servers); err != nil {
		return "", none, retries, fmt.Errorf("REQUEST for the lease: %w", err)
	}
	return file, server, retries, nil
}

func bootFile(p *dhcpv4.DHCPv4) string {
	if f := p.BootFileNameOption(); f != "" {
		return f
	}
	return p.BootFileName
}

// dhcp is the firmware's DISCOVER; the node follows the server of the
// first offer.
func (n *node) dhcp(ctx context.Context, b *bootState) (int, int64, error) {
	_, server, retries, err := n.discover(ctx, 1, false)
	if err == nil {
		b.server = server
		n.r.followed("firmware", server)
	}
	return retries, 0, err
}

// pxe is the firmware's REQUEST to port 4011 of the server it follows,
// from its own address and port 68, answered there with the boot file
// and the TFTP server (siaddr).
func (n *node) pxe(ctx context.Context, b *bootState) (int, int64, error) {
	ip := nodeAddr(n.o.nodes, n.i)
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, dhcpv4.ClientPort)))
	if err != nil {
		return 0, 0, fmt.Errorf("bind %s:68: %w", ip, err)
	}
	defer c.Close()
	p, err := n.packet(dhcpv4.MessageTypeRequest, n.xid(3), false, dhcpv4.WithClientIP(ip.AsSlice()))
	if err != nil {
		return 0, 0, err
	}
	ch := make(chan *dhcpv4.DHCPv4, 1)
	go func() {
		buf := make([]byte, 1500)
		for {
			m, _, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if a, err := dhcpv4.FromBytes(buf[:m]); err == nil && a.TransactionID == p.TransactionID {
				ch <- a
				return
			}
		}
	}()
	to := net.UDPAddrFromAddrPort(netip.AddrPortFrom(b.server, 4011))
	ack, retries, err := retry(ctx, n.o.timeout, n.o.retries, func() error {
		_, err := c.WriteToUDP(p.ToBytes(), to)
		return err
	}, ch)
	if err != nil {
		return retries, 0, fmt.Errorf("REQUEST to 4011: %w", err)
	}
	if ack.MessageType() != dhcpv4.MessageTypeAck {
		return retries, 0, fmt.Errorf("4011 answered with %s", ack.MessageType())
	}
	if b.bootFile = bootFile(ack); b.bootFile == "" {
		return retries, 0, fmt.Errorf("4011 ACK without a boot file")
	}
	b.tftpServer = b.server
	if a, ok := netip.AddrFromSlice(ack.ServerIPAddr.To4()); ok && !a.IsUnspecified() {
		b.tftpServer = a
	}
	return retries, 0, nil
}

// ipxeDHCP is iPXE's own DHCP, answered with the boot script's URL.
func (n *node) ipxeDHCP(ctx context.Context, b *bootState) (int, int64, error) {
	file, server, retries, err := n.discover(ctx, 4, true)
	if err != nil {
		return retries, 0, err
	}
	n.r.followed("iPXE", server)
	b.scriptURL = file
	return retries, 0, nil
}
