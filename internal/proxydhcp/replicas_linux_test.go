package proxydhcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"pack.ag/tftp"

	"github.com/tinderbox-boot/tinderbox/internal/ifaddr"
	"github.com/tinderbox-boot/tinderbox/internal/netnstest"
)

// replica is one tinderbox replica on the test segment: its own network
// namespace and address, proxyDHCP on ports 67 and 4011, and stand-ins
// for TFTP (69) and boot HTTP (8080) that answer every download with the
// replica's name, so that a download tells who served it.
//
// The TFTP stand-in answers from its port-69 socket: tinderbox's TFTP
// server opens a socket per transfer from whichever goroutine runs it,
// which would be outside the namespace here (netnstest.Run moves one
// thread); its own addressing is tested in internal/tftp.
type replica struct {
	name string
	ns   string
	addr net.IP
}

// segment is an L2 segment (a bridge in the client's namespace) with two
// replicas on it, configured alike but for their own addresses.
type segment struct {
	cli      string // the client's namespace
	cliAddr  net.IP
	bcast    net.IP
	replicas []replica
}

// newSegment builds the segment 10.252.22.0/24: the client at .100 on the
// bridge, replica A at .1 and B at .2 behind veth pairs, each running a
// responder with cfg. Everything is removed at cleanup.
func newSegment(t *testing.T, cfg Config) *segment {
	t.Helper()
	s := &segment{cli: netnstest.New(t), cliAddr: net.IPv4(10, 252, 22, 100).To4(), bcast: net.IPv4(10, 252, 22, 255).To4()}
	netnstest.IP(t, "-n", s.cli, "link", "add", "br0", "type", "bridge")
	netnstest.IP(t, "-n", s.cli, "addr", "add", "10.252.22.100/24", "dev", "br0")
	netnstest.IP(t, "-n", s.cli, "link", "set", "br0", "up")
	for i, name := range []string{"A", "B"} {
		r := replica{name: name, ns: netnstest.New(t), addr: net.IPv4(10, 252, 22, byte(i+1)).To4()}
		port := "p" + name
		netnstest.IP(t, "-n", r.ns, "link", "add", "e0", "type", "veth", "peer", "name", port, "netns", s.cli)
		netnstest.IP(t, "-n", r.ns, "addr", "add", r.addr.String()+"/24", "dev", "e0")
		netnstest.IP(t, "-n", r.ns, "link", "set", "e0", "up")
		netnstest.IP(t, "-n", s.cli, "link", "set", port, "master", "br0")
		netnstest.IP(t, "-n", s.cli, "link", "set", port, "up")
		r.start(t, cfg)
		s.replicas = append(s.replicas, r)
	}
	return s
}

// start runs the replica's servers inside its namespace until the test
// ends.
func (r replica) start(t *testing.T, cfg Config) {
	t.Helper()
	var (
		tbl          *ifaddr.Table
		dhcp, pxe    *net.UDPConn
		tconn        net.PacketConn
		hl           net.Listener
		err          error
		ctx, cancel  = context.WithCancel(context.Background())
		servers, end = 0, make(chan error, 4)
	)
	t.Cleanup(func() {
		cancel()
		for range servers {
			if err := <-end; err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("replica %s: %v", r.name, err)
			}
		}
		if tbl != nil {
			tbl.Close()
		}
	})
	netnstest.Run(t, r.ns, func() {
		if tbl, err = ifaddr.New(); err != nil {
			return
		}
		if dhcp, err = Listen(ctx, "proxyDHCP", "", dhcpv4.ServerPort); err != nil {
			return
		}
		if pxe, err = Listen(ctx, "proxyDHCP PXE", "", 4011); err != nil {
			return
		}
		if tconn, err = net.ListenPacket("udp4", ":69"); err != nil {
			return
		}
		hl, err = net.Listen("tcp4", net.JoinHostPort("", "8080"))
	})
	if err != nil {
		t.Fatalf("replica %s: %v", r.name, err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.WriteString(w, "replica "+r.name+" "+req.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	run := func(fn func() error) {
		servers++
		go func() { end <- fn() }()
	}
	run(func() error { return New(Options{Config: cfg, Interfaces: tbl}).Serve(ctx, dhcp) })
	run(func() error { return New(Options{Config: cfg, Interfaces: tbl, PXEPort: true}).Serve(ctx, pxe) })
	run(func() error { return serveTFTP(ctx, tconn, "replica "+r.name+" iPXE binary ") })
	run(func() error { return hs.Serve(hl) })
	context.AfterFunc(ctx, func() { _ = hs.Close() })
}

// serveTFTP answers each read request (RFC 1350 opcode 1) on conn with
// one DATA block holding prefix and the file's name, which ends the
// transfer (a block under 512 bytes is the last); it ignores the ACKs. It
// returns nil when ctx is cancelled.
func serveTFTP(ctx context.Context, conn net.PacketConn, prefix string) error {
	context.AfterFunc(ctx, func() { _ = conn.Close() })
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if n < 4 || buf[0] != 0 || buf[1] != 1 {
			continue
		}
		name, _, _ := bytes.Cut(buf[2:n], []byte{0})
		data := append([]byte{0, 3, 0, 1}, prefix+string(name)...)
		if _, err := conn.WriteTo(data, from); err != nil {
			return err
		}
	}
}

// exchange sends req from the client to (ip, port) and returns every reply
// that arrives until a second has passed since the last one (or since
// the send, when none arrives). A responder that ought to stay silent has
// that long to give itself away.
func (s *segment) exchange(t *testing.T, req *dhcpv4.DHCPv4, ip net.IP, port int) [][]byte {
	t.Helper()
	var (
		conn *net.UDPConn
		err  error
	)
	netnstest.Run(t, s.cli, func() { conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: s.cliAddr}) })
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.WriteTo(req.ToBytes(), &net.UDPAddr{IP: ip, Port: port}); err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	buf := make([]byte, 1500)
	for {
		wait := time.Second
		if len(out) == 0 {
			wait = 5 * time.Second // the first reply: a busy machine may be slow
		}
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		n, err := conn.Read(buf)
		if err != nil {
			return out
		}
		out = append(out, bytes.Clone(buf[:n]))
	}
}

// byReplica sorts replies by the replica that sent them (siaddr), failing
// the test unless each replica sent exactly one.
func (s *segment) byReplica(t *testing.T, replies [][]byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, raw := range replies {
		p, err := dhcpv4.FromBytes(raw)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		r, ok := s.replica(p.ServerIPAddr)
		if !ok {
			t.Fatalf("reply with siaddr %s, which is no replica's", p.ServerIPAddr)
		}
		if _, dup := out[r.name]; dup {
			t.Fatalf("replica %s answered twice", r.name)
		}
		out[r.name] = raw
	}
	if len(out) != len(s.replicas) {
		t.Fatalf("got replies from %d replicas, want %d", len(out), len(s.replicas))
	}
	return out
}

func (s *segment) replica(ip net.IP) (replica, bool) {
	for _, r := range s.replicas {
		if r.addr.Equal(ip) {
			return r, true
		}
	}
	return replica{}, false
}

// asReplica is the reply raw with replica from's own-address fields
// rewritten to to's: siaddr, option 54, and the host of a boot-file URL
// (header field and option 67). These are the
// only fields in which two replicas' replies may differ.
func asReplica(t *testing.T, raw []byte, from, to net.IP) []byte {
	t.Helper()
	p, err := dhcpv4.FromBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	p.ServerIPAddr = to
	p.UpdateOption(dhcpv4.OptServerIdentifier(to))
	host := func(ip net.IP) string { return "http://" + ip.String() + ":" }
	p.BootFileName = strings.Replace(p.BootFileName, host(from), host(to), 1)
	if f := p.Options.Get(dhcpv4.OptionBootfileName); f != nil {
		p.UpdateOption(dhcpv4.OptGeneric(dhcpv4.OptionBootfileName, bytes.Replace(f, []byte(host(from)), []byte(host(to)), 1)))
	}
	return p.ToBytes()
}

// download fetches the boot file a reply hands out, the way firmware
// following that reply would: by TFTP from siaddr for a file name, by
// HTTP for a URL. It returns what was served.
func (s *segment) download(t *testing.T, reply *dhcpv4.DHCPv4) string {
	t.Helper()
	file := reply.BootFileName
	if f := reply.Options.Get(dhcpv4.OptionBootfileName); f != nil {
		file = string(bytes.TrimRight(f, "\x00"))
	}
	var (
		body []byte
		err  error
	)
	if strings.HasPrefix(file, "http://") {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (conn net.Conn, err error) {
				netnstest.Run(t, s.cli, func() { conn, err = (&net.Dialer{}).DialContext(ctx, network, addr) })
				return conn, err
			},
		}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(file)
		if err != nil {
			t.Fatalf("GET %s: %v", file, err)
		}
		defer resp.Body.Close()
		if body, err = io.ReadAll(resp.Body); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s %v", file, resp.Status, err)
		}
		return string(body)
	}
	netnstest.Run(t, s.cli, func() {
		var c *tftp.Client
		if c, err = tftp.NewClient(tftp.ClientRetransmit(5)); err != nil {
			return
		}
		var resp *tftp.Response
		if resp, err = c.Get("tftp://" + net.JoinHostPort(reply.ServerIPAddr.String(), "69") + "/" + file); err != nil {
			return
		}
		body, err = io.ReadAll(resp)
	})
	if err != nil {
		t.Fatalf("TFTP %s from %s: %v", file, reply.ServerIPAddr, err)
	}
	return string(body)
}

// TestReplicasOfferAlike runs two replicas with one configuration on one
// segment and checks what PXE firmware and iPXE get from each: the
// replies differ only in the replica's own address (siaddr, option 54,
// and the host of a boot-file URL when advertise is not pinned), byte for
// byte otherwise, and following a replica's reply (TFTP from siaddr, HTTP
// from the URL) reaches that same replica, never a mix of the two. With
// advertise pinned to one shared address, the URLs are identical too and
// only siaddr and option 54 differ.
func TestReplicasOfferAlike(t *testing.T) {
	netnstest.Require(t)
	httpBoot := []dhcpv4.Modifier{archOpt(16), vendorOpt(pxeVendor(16)), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, testGUID)}
	tests := []struct {
		name string
		mods []dhcpv4.Modifier
		// wantFile is the boot file, "%s" standing for the replica's
		// address when advertise is not pinned.
		wantFile string
	}{
		{name: "bios pxe", mods: firmware(0), wantFile: "undionly.kpxe"},
		{name: "uefi x64 pxe", mods: firmware(7), wantFile: "snponly.efi"},
		{name: "uefi x64 http boot", mods: httpBoot, wantFile: "http://%s:8080/boot/snponly.efi"},
		{name: "ipxe", mods: ipxeClient(0), wantFile: "http://%s:8080/boot.ipxe"},
	}
	shared := netip.MustParseAddr("10.252.22.10")
	for _, pinned := range []bool{false, true} {
		cfg := Config{HTTPPort: 8080}
		if pinned {
			cfg.Advertise = shared
		}
		seg := newSegment(t, cfg)
		a, b := seg.replicas[0], seg.replicas[1]
		for _, tt := range tests {
			name := tt.name
			if pinned {
				name += " advertise pinned"
			}
			t.Run(name, func(t *testing.T) {
				offers := seg.byReplica(t, seg.exchange(t, packet(t, dhcpv4.MessageTypeDiscover, tt.mods...), seg.bcast, dhcpv4.ServerPort))
				if got, want := offers[b.name], asReplica(t, offers[a.name], a.addr, b.addr); !bytes.Equal(got, want) {
					t.Errorf("B's offer is not A's with B's address:\ngot  %x\nwant %x", got, want)
				}
				for _, r := range seg.replicas {
					offer, err := dhcpv4.FromBytes(offers[r.name])
					if err != nil {
						t.Fatal(err)
					}
					host := r.addr.String()
					if pinned {
						host = shared.String()
					}
					want := strings.ReplaceAll(tt.wantFile, "%s", host)
					if got := offer.BootFileName; got != want {
						t.Errorf("replica %s: got boot file %q, want %q", r.name, got, want)
					}
					if sid := offer.ServerIdentifier(); !sid.Equal(r.addr) {
						t.Errorf("replica %s: got option 54 %s, want %s", r.name, sid, r.addr)
					}
					if pinned && strings.HasPrefix(want, "http://") {
						continue // the shared address is no one's in this test
					}
					if got, want := seg.download(t, offer), "replica "+r.name+" "; !strings.HasPrefix(got, want) {
						t.Errorf("following replica %s's offer: served %q, want it from %s", r.name, got, want)
					}
				}
			})
		}
		if pinned {
			continue
		}
		t.Run("uefi port 4011", func(t *testing.T) {
			// EDK2 sends its boot-server REQUEST to the offer's siaddr
			// on port 4011, without option 54: each replica ACKs its own.
			acks := map[string][]byte{}
			for _, r := range seg.replicas {
				replies := seg.exchange(t, packet(t, dhcpv4.MessageTypeRequest, firmware(7)...), r.addr, 4011)
				if len(replies) != 1 {
					t.Fatalf("replica %s: got %d replies on port 4011, want 1", r.name, len(replies))
				}
				ack, err := dhcpv4.FromBytes(replies[0])
				if err != nil {
					t.Fatal(err)
				}
				if !ack.ServerIPAddr.Equal(r.addr) || ack.MessageType() != dhcpv4.MessageTypeAck {
					t.Fatalf("replica %s: got a %s from %s, want its ACK", r.name, ack.MessageType(), ack.ServerIPAddr)
				}
				if got, want := seg.download(t, ack), "replica "+r.name+" iPXE binary snponly.efi"; got != want {
					t.Errorf("following replica %s's ACK: served %q, want %q", r.name, got, want)
				}
				acks[r.name] = replies[0]
			}
			if got, want := acks[b.name], asReplica(t, acks[a.name], a.addr, b.addr); !bytes.Equal(got, want) {
				t.Errorf("B's ACK is not A's with B's address:\ngot  %x\nwant %x", got, want)
			}
		})
		t.Run("request naming one replica", func(t *testing.T) {
			// A broadcast REQUEST whose option 54 names A is A's alone:
			// B stays silent, so the client's exchange stays with A.
			req := packet(t, dhcpv4.MessageTypeRequest, append(ipxeClient(0), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(a.addr)))...)
			replies := seg.exchange(t, req, seg.bcast, dhcpv4.ServerPort)
			if len(replies) != 1 {
				t.Fatalf("got %d replies, want 1 (from A)", len(replies))
			}
			ack, err := dhcpv4.FromBytes(replies[0])
			if err != nil {
				t.Fatal(err)
			}
			if !ack.ServerIPAddr.Equal(a.addr) || ack.MessageType() != dhcpv4.MessageTypeAck {
				t.Fatalf("got a %s from %s, want an ACK from A (%s)", ack.MessageType(), ack.ServerIPAddr, a.addr)
			}
			if got, want := seg.download(t, ack), "replica A /boot.ipxe"; got != want {
				t.Errorf("following A's ACK: served %q, want %q", got, want)
			}
		})
	}
}
