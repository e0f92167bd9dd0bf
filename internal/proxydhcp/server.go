package proxydhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/ipv4"

	"github.com/tinderbox-boot/tinderbox/internal/ifaddr"
	"github.com/tinderbox-boot/tinderbox/internal/metrics"
	"github.com/tinderbox-boot/tinderbox/internal/panics"
)

// Sent is a reply the server sent, as told to a Recorder.
type Sent struct {
	Client Client
	// Type is dhcpv4.MessageTypeOffer or dhcpv4.MessageTypeAck.
	Type dhcpv4.MessageType
	// File is the boot file in the reply (a name for TFTP, or a URL).
	File string
}

// Recorder is told of every reply sent; the machine-state layer implements
// it to record the "proxy offer sent" event, firmware, UUID and IP of the
// MAC. DHCPSent is called after the send, from the reader that took the
// packet, before it reads another: it must be safe for concurrent use and
// should not block for long.
type Recorder interface {
	DHCPSent(ctx context.Context, s Sent)
}

// Observer is told of a PXE client's REQUEST that selects another
// server's lease (and so gets no reply): its RequestedIP ties the MAC to
// the address the router gave, so transfers from that address later (TFTP
// from BIOS ROMs that never ask port 4011) can be attributed. Same
// concurrency rules as Recorder.
type Observer interface {
	DHCPObserved(ctx context.Context, c Client)
}

// Metrics are the responder's Prometheus collectors, shared by its listeners.
type Metrics struct {
	packets *prometheus.CounterVec
	panics  *panics.Site
}

// NewMetrics registers the responder's collectors on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		packets: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metrics.Namespace,
			Subsystem: "dhcp",
			Name:      "packets_total",
			Help: "DHCP packets received by the proxyDHCP responder, by message type, client " +
				"architecture class, result (offered, acked, ignored, error) and reason.",
		}, []string{"type", "arch", "result", "reason"}),
	}
	reg.MustRegister(m.packets)
	m.panics = panics.Register(reg).Site("dhcp")
	return m
}

// Options configure a Server.
type Options struct {
	Config Config
	// Policy decides which PXE clients are answered; nil answers all.
	Policy Policy
	// Recorder is told of every reply sent; nil records nothing.
	Recorder Recorder
	// Observer is told of the lease REQUESTs meant for another server that
	// name the address requested; nil observes nothing.
	Observer Observer
	// Logger receives one Info line per reply sent, per-packet detail at
	// Debug; nil discards.
	Logger *slog.Logger
	// Metrics may be shared by several servers; nil counts nothing.
	Metrics *Metrics
	// PXEPort marks the port-4011 listener, where firmware sends its
	// boot-server REQUEST without option 54.
	PXEPort bool
	// ReplyDelay holds each reply back this long (config dhcp.replyDelay;
	// 0 sends at once): some firmware misses a proxy offer that arrives
	// before the router's (dnsmasq's --dhcp-reply-delay is the known cure).
	// A delayed reply keeps the reader that took its packet while it
	// waits (Serve runs maxInFlight of them).
	ReplyDelay time.Duration
	// Interfaces tells the receiving interface's addresses; share one
	// ifaddr.Table between servers. nil asks the kernel for every packet.
	Interfaces *ifaddr.Table
}

// Server answers PXE clients on one socket. Its methods are safe for
// concurrent use; each packet is answered by the reader goroutine that
// took it from the socket (Serve).
type Server struct {
	o      Options
	quiet  quietSet
	panics *panics.Site
}

// quietSet remembers the clients already warned about, so that a client
// the proxy cannot serve (an architecture it has no binary for) is logged
// at Warn once, and at Debug on its retries. It forgets everything once it
// holds maxQuiet keys, so a flood of new MACs cannot grow it.
type quietSet struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

// maxQuiet bounds quietSet.
const maxQuiet = 4096

// first says whether key is new, and remembers it.
func (q *quietSet) first(key string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.seen[key]; ok {
		return false
	}
	if q.seen == nil || len(q.seen) >= maxQuiet {
		q.seen = make(map[string]struct{})
	}
	q.seen[key] = struct{}{}
	return true
}

// maxInFlight bounds the packets handled at once: Serve runs this many
// readers, each answering the packet it read before it reads the next;
// with every one of them busy (stuck in a hook, or holding a delayed
// reply), the kernel's socket buffer absorbs (or drops) a burst.
const maxInFlight = 64

// maxPacket is a reader's buffer: the largest UDP payload, so no request
// is cut short. Only the bytes a packet fills are ever touched.
const maxPacket = 1 << 16

// New returns a server; it opens nothing: Serve is handed the socket.
func New(o Options) *Server {
	if o.Policy == nil {
		o.Policy = AnswerAll{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{o: o}
	if o.Metrics != nil {
		s.panics = o.Metrics.panics
	}
	return s
}

// udpConn is the part of *net.UDPConn Serve uses: reads and writes that
// carry control messages (IP_PKTINFO) and a netip.AddrPort, neither of
// which allocates.
type udpConn interface {
	net.PacketConn
	ReadMsgUDPAddrPort(b, oob []byte) (n, oobn, flags int, addr netip.AddrPort, err error)
	WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error)
}

// Serve answers the packets arriving on conn until ctx is cancelled, then
// waits for the packets in hand and returns nil. It blocks. conn must be
// a *net.UDPConn and should come from Listen (replies need IP_PKTINFO);
// Serve closes it before it returns, before it waits for the packets in
// hand: a handler stuck in a hook must not keep the port held, where a
// restarted instance sharing it (SO_REUSEPORT) would lose packets to it.
// A bad packet is counted and logged, and a handler's panic is recovered,
// counted (tinderbox_panics_total{where="dhcp"}) and logged; only a closed
// socket or one without IP_PKTINFO ends Serve early, with an error.
//
// maxInFlight readers share the socket, each reading a packet and
// answering it itself: packets are taken in the order they arrived, and
// no packet waits for a goroutine to be started or scheduled for it.
func (s *Server) Serve(ctx context.Context, conn net.PacketConn) error {
	uc, ok := conn.(udpConn)
	if !ok {
		_ = conn.Close()
		return fmt.Errorf("proxydhcp: serve %s: not a UDP socket", conn.LocalAddr())
	}
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
		_ = conn.Close()
		return fmt.Errorf("proxydhcp: enable IP_PKTINFO on %s: %w", conn.LocalAddr(), err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	var (
		wg     sync.WaitGroup
		once   sync.Once
		failed error
	)
	for range maxInFlight {
		wg.Go(func() {
			if err := s.read(ctx, uc); err != nil {
				once.Do(func() {
					failed = err
					_ = conn.Close() // the other readers stop too
				})
			}
		})
	}
	wg.Wait()
	_ = conn.Close()
	return failed
}

// read is one of Serve's readers: it answers packet after packet until
// the socket is closed, and returns nil when ctx is done, else the error
// that closed it.
func (s *Server) read(ctx context.Context, conn udpConn) error {
	buf := make([]byte, maxPacket)
	oob := ipv4.NewControlMessage(ipv4.FlagInterface | ipv4.FlagDst)
	var out sendInfo
	for {
		n, oobn, _, peer, err := conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("proxydhcp: read %s: %w", conn.LocalAddr(), err)
			}
			// A socket error that is not ours to fix (e.g. ENOBUFS) must not
			// stop the responder; pause so a lasting one does not spin.
			s.o.Logger.Warn("proxydhcp: read", "listen", conn.LocalAddr().String(), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		in := arrival{peer: netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())}
		var cm ipv4.ControlMessage
		if cm.Parse(oob[:oobn]) == nil && cm.IfIndex != 0 {
			in.ifIndex = cm.IfIndex
			in.dst, _ = netip.AddrFromSlice(cm.Dst)
			in.dst = in.dst.Unmap()
			in.pktinfo = true
		}
		s.answer(ctx, conn, buf[:n], in, &out)
	}
}

// arrival is how a packet came in: from whom, and (IP_PKTINFO) on which
// interface and to which address.
type arrival struct {
	peer    netip.AddrPort
	pktinfo bool // ifIndex and dst are known
	ifIndex int
	dst     netip.Addr
}

// sendInfo is a reader's IP_PKTINFO control message for its replies,
// kept while they leave from the same interface and address (as they do,
// but for a server on several LANs), so that it is built once.
type sendInfo struct {
	ifIndex int
	src     netip.Addr
	oob     []byte
}

// controlMessage returns the IP_PKTINFO control message that sends a
// reply out of interface ifIndex (0: as routed) from src.
func (o *sendInfo) controlMessage(ifIndex int, src netip.Addr) []byte {
	if o.oob == nil || o.ifIndex != ifIndex || o.src != src {
		cm := ipv4.ControlMessage{IfIndex: ifIndex}
		if src.IsValid() {
			cm.Src = src.AsSlice()
		}
		o.ifIndex, o.src, o.oob = ifIndex, src, cm.Marshal()
	}
	return o.oob
}

// answer handles one packet, recovering a panic of its hooks.
func (s *Server) answer(ctx context.Context, conn udpConn, pkt []byte, in arrival, out *sendInfo) {
	defer func() {
		if v := recover(); v != nil {
			_ = s.panics.Caught(v, s.o.Logger, slog.String("remote", in.peer.String()))
		}
	}()
	s.handle(ctx, conn, pkt, in, out)
}

// handle answers one packet.
func (s *Server) handle(ctx context.Context, conn udpConn, pkt []byte, in arrival, out *sendInfo) {
	log := s.o.Logger
	p, err := dhcpv4.FromBytes(pkt)
	if err != nil {
		s.count("malformed", "none", "error", ReasonMalformed)
		log.Debug("proxydhcp: malformed packet", "remote", in.peer.String(), "len", len(pkt), "err", err)
		return
	}
	local := s.localAddr(in, conn)
	var serverIP net.IP
	if local.IsValid() {
		serverIP = local.AsSlice()
	}
	d := Decide(ctx, Request{Packet: p, ServerIP: serverIP, PXEPort: s.o.PXEPort}, s.o.Config, s.o.Policy)
	typ := typeLabel(p.MessageType())
	arch := "none"
	if d.Client != nil {
		arch = d.Client.Firmware.Label(d.Client.HTTPBoot)
	}
	// attrs are the packet's log attributes and more, formatted only for
	// a line that is written (a reply's path logs none of them).
	attrs := func(more ...any) []any {
		return append([]any{"mac", p.ClientHWAddr.String(), "xid", p.TransactionID.String(), "type", typ, "remote", in.peer.String()}, more...)
	}
	switch {
	case d.Err != nil:
		s.count(typ, arch, "error", d.Reason)
		log.Warn("proxydhcp: cannot answer", attrs("arch", arch, "err", d.Err)...)
		return
	case d.Reply == nil:
		s.count(typ, arch, "ignored", d.Reason)
		level := slog.LevelDebug
		if d.Reason == ReasonNoBinary && s.quiet.first(p.ClientHWAddr.String()+" "+arch) {
			level = slog.LevelWarn // once per MAC and firmware: firmware retries
		}
		if log.Enabled(ctx, level) {
			log.Log(ctx, level, "proxydhcp: no reply", attrs("arch", arch, "reason", string(d.Reason), "detail", d.Detail)...)
		}
		if s.o.Observer != nil && d.Reason == ReasonOtherServer && d.Client.RequestedIP != nil {
			s.o.Observer.DHCPObserved(ctx, *d.Client)
		}
		return
	}

	if s.o.ReplyDelay > 0 {
		t := time.NewTimer(s.o.ReplyDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	dst := replyAddr(p, in.peer)
	if _, _, err := conn.WriteMsgUDPAddrPort(d.Reply.ToBytes(), out.controlMessage(in.ifIndex, local), dst); err != nil {
		s.count(typ, arch, "error", ReasonSend)
		log.Warn("proxydhcp: send reply", attrs("to", dst.String(), "err", err)...)
		return
	}
	result, what := "offered", "proxy offer sent"
	if d.Reply.MessageType() == dhcpv4.MessageTypeAck {
		result, what = "acked", "proxy ack sent"
	}
	s.count(typ, arch, result, "")
	if log.Enabled(ctx, slog.LevelInfo) {
		log.LogAttrs(ctx, slog.LevelInfo, what, slog.String("mac", p.ClientHWAddr.String()), slog.String("arch", arch),
			slog.String("file", d.File), slog.String("uuid", d.Client.UUID), slog.Bool("ipxe", d.Client.IPXE), slog.String("to", dst.String()))
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		log.Debug("proxydhcp: reply", "xid", p.TransactionID.String(), "server", local.String(),
			"vendor", p.ClassIdentifier(), "arch_code", uint16(d.Client.ClientArch), "ciaddr", p.ClientIPAddr.String(),
			"giaddr", p.GatewayIPAddr.String(), "opt43", d.Reply.Options.Has(dhcpv4.OptionVendorSpecificInformation))
	}
	if s.o.Recorder != nil {
		c := *d.Client
		if c.IP == nil && p.GatewayIPAddr.IsUnspecified() && in.peer.Addr().Is4() && !in.peer.Addr().IsUnspecified() {
			c.IP = in.peer.Addr().AsSlice()
		}
		s.o.Recorder.DHCPSent(ctx, Sent{Client: c, Type: d.Reply.MessageType(), File: d.File})
	}
}

func (s *Server) count(typ, arch, result string, reason Reason) {
	if s.o.Metrics != nil {
		s.o.Metrics.packets.WithLabelValues(typ, arch, result, string(reason)).Inc()
	}
}

// typeLabel names a message type as a bounded metric label.
func typeLabel(t dhcpv4.MessageType) string {
	switch t {
	case dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeOffer, dhcpv4.MessageTypeRequest,
		dhcpv4.MessageTypeDecline, dhcpv4.MessageTypeAck, dhcpv4.MessageTypeNak,
		dhcpv4.MessageTypeRelease, dhcpv4.MessageTypeInform:
		return strings.ToLower(t.String())
	case dhcpv4.MessageTypeNone:
		return "none"
	}
	return "other"
}

// localAddr is tinderbox's address on the interface a packet came in on
// (IP_PKTINFO), which the reply is sent from and names in siaddr, option
// 54 and, unless advertise is pinned (Config.Advertise), in its URLs: the
// packet's destination when it was sent to one of the interface's
// addresses, else (a broadcast) the advertised address if the interface has
// it, else the interface's first IPv4 address. Without IP_PKTINFO it is
// the socket's own address when it is bound to one. It is the zero Addr
// when the interface has no IPv4 address.
func (s *Server) localAddr(in arrival, conn udpConn) netip.Addr {
	if !in.pktinfo {
		if ua, ok := conn.LocalAddr().(*net.UDPAddr); ok && !ua.IP.IsUnspecified() {
			a, _ := netip.AddrFromSlice(ua.IP.To4())
			return a
		}
		return netip.Addr{}
	}
	ifc, ok := s.o.Interfaces.ByIndex(in.ifIndex)
	if !ok {
		return netip.Addr{}
	}
	adv := s.o.Config.Advertise.Unmap()
	var first, advertised netip.Addr
	for _, p := range ifc.Addrs {
		ip := p.Addr()
		switch {
		case !ip.Is4():
		case ip == in.dst:
			return ip
		case ip == adv:
			advertised = ip
		case !first.IsValid():
			first = ip
		}
	}
	if advertised.IsValid() {
		return advertised
	}
	return first
}

// replyAddr is where a reply goes: the relay agent (giaddr) on the server
// port; else the client's own address and port when it has one (EDK2 waits
// for its port-4011 ACK there); else broadcast to the client port, since the
// client has no address yet and a proxy offers none (RFC 2131 §4.1).
func replyAddr(p *dhcpv4.DHCPv4, peer netip.AddrPort) netip.AddrPort {
	if gw, ok := netip.AddrFromSlice(p.GatewayIPAddr.To4()); ok && !gw.IsUnspecified() {
		return netip.AddrPortFrom(gw, dhcpv4.ServerPort)
	}
	if ip := peer.Addr().Unmap(); ip.Is4() && !ip.IsUnspecified() {
		return netip.AddrPortFrom(ip, peer.Port())
	}
	port := uint16(dhcpv4.ClientPort)
	if peer.Port() != 0 {
		port = peer.Port()
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), port)
}
