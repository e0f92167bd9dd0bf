package proxydhcp

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/net/ipv4"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// serveOn runs a server with opts on a plain loopback UDP socket (no
// Listen, so it runs wherever IP_PKTINFO does). As Listen does, it turns
// IP_PKTINFO on before any packet can arrive, so that every packet says
// which interface it came in on. stop cancels Serve and returns its
// error; it may be called more than once.
func serveOn(t *testing.T, opts Options) (conn *net.UDPConn, stop func() error) {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	if err := ipv4.NewPacketConn(conn).SetControlMessage(ipv4.FlagInterface|ipv4.FlagDst, true); err != nil {
		t.Fatal(err)
	}
	opts.Config = Config{Advertise: netip.MustParseAddr("127.0.0.1"), HTTPPort: 8080}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- New(opts).Serve(ctx, conn) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	t.Cleanup(func() { _ = stop() })
	return conn, stop
}

// exchange sends req to server from a fresh loopback socket and returns
// the reply, failing the test when none comes.
func exchange(t *testing.T, server net.Addr, req *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteTo(req.ToBytes(), server); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply: %v", err)
	}
	r, err := dhcpv4.FromBytes(buf[:n])
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	return r
}

// leaseRequest is firmware's REQUEST for the router's lease at ip.
func leaseRequest(t *testing.T, ip net.IP) *dhcpv4.DHCPv4 {
	return packet(t, dhcpv4.MessageTypeRequest, append(firmware(0),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(ip)))...)
}

// TestServeContract: with nothing but a socket (no Logger, Metrics,
// Policy, Recorder or Observer) the server answers; a lease REQUEST with
// no Observer set is ignored; Serve returns nil on cancel and has closed
// the socket.
func TestServeContract(t *testing.T) {
	conn, stop := serveOn(t, Options{})
	sendRaw(t, conn.LocalAddr().(*net.UDPAddr), leaseRequest(t, net.IPv4(192, 0, 2, 55)).ToBytes())
	offer := exchange(t, conn.LocalAddr(), packet(t, dhcpv4.MessageTypeDiscover, firmware(7)...))
	if offer.MessageType() != dhcpv4.MessageTypeOffer || offer.BootFileName != "snponly.efi" {
		t.Fatalf("got %s of %q, want an OFFER of snponly.efi", offer.MessageType(), offer.BootFileName)
	}
	if err := stop(); err != nil {
		t.Fatalf("Serve after cancel: got %v, want nil", err)
	}
	if _, _, err := conn.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("reading the socket after Serve returned: got %v, want net.ErrClosed (Serve closes it)", err)
	}
}

// TestServeClosesOnCancelledContext: a context cancelled before Serve
// starts still gets nil and a closed socket.
func TestServeClosesOnCancelledContext(t *testing.T) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := New(Options{}).Serve(ctx, conn); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if _, _, err := conn.ReadFrom(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("got %v, want net.ErrClosed", err)
	}
}

// TestObserverOption: the Observer is an explicit option. Set alone, it
// learns of a lease REQUEST; a Recorder that could also observe is not
// asked to unless it is set as the Observer too.
func TestObserverOption(t *testing.T) {
	leased := net.IPv4(192, 0, 2, 55)

	t.Run("observer alone", func(t *testing.T) {
		obs := &recorder{}
		conn, _ := serveOn(t, Options{Observer: obs})
		sendRaw(t, conn.LocalAddr().(*net.UDPAddr), leaseRequest(t, leased).ToBytes())
		waitFor(t, func() bool { return len(obs.seen()) == 1 })
		c := obs.seen()[0]
		if !c.RequestedIP.Equal(leased) || c.MAC.String() != testMAC.String() || c.Firmware != machine.FirmwareBIOS {
			t.Errorf("observed %+v, want BIOS client %s at %s", c, testMAC, leased)
		}
	})

	t.Run("recorder is not an observer", func(t *testing.T) {
		rec := &recorder{}
		m := NewMetrics(prometheus.NewRegistry())
		conn, _ := serveOn(t, Options{Recorder: rec, Metrics: m})
		sendRaw(t, conn.LocalAddr().(*net.UDPAddr), leaseRequest(t, leased).ToBytes())
		waitFor(t, func() bool {
			return testutil.ToFloat64(m.packets.WithLabelValues("request", "bios", "ignored", string(ReasonOtherServer))) == 1
		})
		exchange(t, conn.LocalAddr(), packet(t, dhcpv4.MessageTypeDiscover, firmware(7)...))
		waitFor(t, func() bool { return len(rec.all()) == 1 })
		if got := rec.seen(); len(got) != 0 {
			t.Errorf("a Recorder not set as Observer observed %+v", got)
		}
		if s := rec.all()[0]; s.Client.Firmware != machine.FirmwareEFIX64 || s.Client.MAC.String() != testMAC.String() {
			t.Errorf("recorded %+v, want efi-x64 client %s", s.Client, testMAC)
		}
	})
}

// TestFirmwareLabel: the arch label of every option-93 code, with and
// without HTTP boot, is the one metrics and logs carried when it was a
// string computed in this package.
func TestFirmwareLabel(t *testing.T) {
	want := map[iana.Arch]string{
		iana.INTEL_X86PC: "bios",
		iana.EFI_IA32:    "efi-ia32", iana.EFI_X86_HTTP: "efi-ia32",
		iana.EFI_X86_64: "efi-x64", iana.EFI_BC: "efi-x64", iana.EFI_X86_64_HTTP: "efi-x64", iana.EFI_BC_HTTP: "efi-x64",
		iana.EFI_ARM32: "efi-arm32", iana.EFI_ARM32_HTTP: "efi-arm32",
		iana.EFI_ARM64: "efi-arm64", iana.EFI_ARM64_HTTP: "efi-arm64",
		iana.UBOOT_ARM32: "uboot-arm32", iana.UBOOT_ARM32_HTTP: "uboot-arm32",
		iana.UBOOT_ARM64: "uboot-arm64", iana.UBOOT_ARM64_HTTP: "uboot-arm64",
	}
	for a := iana.Arch(0); a <= iana.EFI_SUNWAY64+1; a++ {
		for _, http := range []bool{false, true} {
			w, ok := want[a]
			switch {
			case !ok:
				w = "other"
			case http:
				w += "-http"
			}
			if got := firmwareOf(a).Label(http); got != w {
				t.Errorf("arch %d (%s) http %v: got %q, want %q", uint16(a), a, http, got, w)
			}
		}
	}
}

// TestNonEthernetChaddr: a chaddr that is not 6 bytes is answered as it
// always was (the reply echoes it), with a zero MAC for the hooks.
func TestNonEthernetChaddr(t *testing.T) {
	hw := net.HardwareAddr{1, 2, 3, 4, 5, 6, 7, 8}
	req := packet(t, dhcpv4.MessageTypeDiscover, append(firmware(7), dhcpv4.WithHwAddr(hw))...)
	var seen *Client
	policy := policyFunc(func(c Client) (Verdict, error) { seen = &c; return Verdict{Answer: true}, nil })
	d := Decide(t.Context(), Request{Packet: req, ServerIP: testServer}, testConfig(false), policy)
	if d.Reply == nil {
		t.Fatalf("got no reply (%s: %s), want one", d.Reason, d.Detail)
	}
	checkReply(t, req, d.Reply, testServer)
	if seen == nil || !seen.MAC.IsZero() || !d.Client.MAC.IsZero() {
		t.Errorf("policy saw %+v, decision client %+v; want a zero MAC", seen, d.Client)
	}
}
