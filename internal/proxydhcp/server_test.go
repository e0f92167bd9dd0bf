//go:build linux

package proxydhcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tinderbox-boot/tinderbox/internal/bind"
)

type testServerRig struct {
	addr    *net.UDPAddr
	metrics *Metrics
	logs    string // path of the server's log, a file the test reads while the server writes
	rec     *recorder
}

// startServer runs a Server on a socket from Listen, on an ephemeral port
// reached over loopback; cleanup cancels it and checks Serve returned nil.
func startServer(t *testing.T, pxePort bool, policy Policy, more ...func(*Options)) *testServerRig {
	t.Helper()
	conn, err := Listen(t.Context(), "proxyDHCP", "", 0)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	rig := &testServerRig{
		addr:    &net.UDPAddr{IP: loopback, Port: conn.LocalAddr().(*net.UDPAddr).Port},
		metrics: NewMetrics(prometheus.NewRegistry()),
		logs:    filepath.Join(t.TempDir(), "server.log"),
		rec:     &recorder{},
	}
	logFile, err := os.Create(rig.logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	o := Options{
		Config:   Config{Advertise: netip.MustParseAddr("127.0.0.1"), HTTPPort: 8080},
		Policy:   policy,
		Recorder: rig.rec,
		Observer: rig.rec,
		Logger:   slog.New(slog.NewTextHandler(io.MultiWriter(t.Output(), logFile), &slog.HandlerOptions{Level: slog.LevelDebug})),
		Metrics:  rig.metrics,
		PXEPort:  pxePort,
	}
	for _, f := range more {
		f(&o)
	}
	srv := New(o)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return within 5s of cancel")
		}
		_ = conn.Close()
	})
	return rig
}

// log returns what the server has logged so far.
func (r *testServerRig) log(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(r.logs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// client is an nclient4 client sending unicast from loopback to the rig.
func client(t *testing.T, server *net.UDPAddr) *nclient4.Client {
	t.Helper()
	c, err := nclient4.New("",
		nclient4.WithUnicast(&net.UDPAddr{IP: loopback}),
		nclient4.WithHWAddr(testMAC),
		nclient4.WithServerAddr(server),
		nclient4.WithTimeout(500*time.Millisecond),
		nclient4.WithRetry(2))
	if err != nil {
		t.Fatalf("nclient4: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestServerOffer(t *testing.T) {
	for _, pxePort := range []bool{false, true} {
		name := "dhcp port"
		if pxePort {
			name = "pxe port"
		}
		t.Run(name, func(t *testing.T) {
			rig := startServer(t, pxePort, nil)
			c := client(t, rig.addr)
			offer, err := c.DiscoverOffer(t.Context(), firmware(7)...)
			if err != nil {
				t.Fatalf("DiscoverOffer: %v", err)
			}
			req := packet(t, dhcpv4.MessageTypeDiscover, firmware(7)...)
			req.TransactionID = offer.TransactionID
			checkReply(t, req, offer, loopback)
			if offer.BootFileName != "snponly.efi" {
				t.Errorf("got file %q, want snponly.efi", offer.BootFileName)
			}
			waitFor(t, func() bool { return len(rig.rec.all()) == 1 })
			got := rig.rec.all()[0]
			if got.Type != dhcpv4.MessageTypeOffer || got.File != "snponly.efi" || got.Client.UUID != testUUID ||
				got.Client.ClientArch != 7 || !got.Client.IP.Equal(loopback) || got.Client.MAC.String() != testMAC.String() {
				t.Errorf("got recorded %+v, want an OFFER of snponly.efi to %s (arch 7, uuid %s, ip 127.0.0.1)", got, testMAC, testUUID)
			}
			if n := testutil.ToFloat64(rig.metrics.packets.WithLabelValues("discover", "efi-x64", "offered", "")); n != 1 {
				t.Errorf("got %v discover/efi-x64/offered, want 1", n)
			}
			logs := rig.log(t)
			if strings.Count(logs, "level=INFO") != 1 || !strings.Contains(logs, `msg="proxy offer sent" mac=52:54:00:12:34:56 arch=efi-x64 file=snponly.efi`) {
				t.Errorf("got log\n%s\nwant one Info line: proxy offer sent mac=… arch=efi-x64 file=snponly.efi", logs)
			}
		})
	}
}

// TestServerDropsBadUUID checks that a malformed option 97 or the SMBIOS
// "no UUID" value still gets its offer, but reaches the recorder (which
// stores it) and the log as no UUID at all.
func TestServerDropsBadUUID(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  []byte
	}{
		{"all 00h", make([]byte, 17)},
		{"all FFh", append([]byte{0}, bytes.Repeat([]byte{0xff}, 16)...)},
		{"type 1", append([]byte{1}, testGUID[1:]...)},
		{"16 bytes", testGUID[:16]},
		{"a script line", []byte("\x00x\nchain http://e/")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rig := startServer(t, false, nil)
			c := client(t, rig.addr)
			mods := append(firmware(7), dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, tc.opt))
			if _, err := c.DiscoverOffer(t.Context(), mods...); err != nil {
				t.Fatalf("DiscoverOffer: %v", err)
			}
			waitFor(t, func() bool { return len(rig.rec.all()) == 1 })
			if got := rig.rec.all()[0]; got.Client.UUID != "" || got.File != "snponly.efi" {
				t.Errorf("got recorded uuid %q file %q, want no UUID and an offer of ipxe.efi", got.Client.UUID, got.File)
			}
			if logs := rig.log(t); !strings.Contains(logs, ` uuid="" `) {
				t.Errorf("got log\n%s\nwant uuid=\"\"", logs)
			}
		})
	}
}

// TestServerAck is EDK2's boot-server REQUEST: to port 4011, from the
// client's new address, no option 54; it waits for a unicast ACK.
func TestServerAck(t *testing.T) {
	rig := startServer(t, true, nil)
	c := client(t, rig.addr)
	req := packet(t, dhcpv4.MessageTypeRequest, append(firmware(0), dhcpv4.WithClientIP(loopback))...)
	ack, err := c.SendAndRead(t.Context(), rig.addr, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck))
	if err != nil {
		t.Fatalf("SendAndRead: %v", err)
	}
	checkReply(t, req, ack, loopback)
	if ack.BootFileName != "undionly.kpxe" || !bytes.Equal(ack.Options.Get(dhcpv4.OptionVendorSpecificInformation), discoveryControl) {
		t.Errorf("got file %q option 43 % x, want undionly.kpxe and 06 01 08 ff", ack.BootFileName, ack.Options.Get(dhcpv4.OptionVendorSpecificInformation))
	}
	// The packet is counted once the send returns, which can be after the
	// client has read the ACK: wait for the count.
	waitFor(t, func() bool { return len(rig.rec.all()) == 1 })
	if n := testutil.ToFloat64(rig.metrics.packets.WithLabelValues("request", "bios", "acked", "")); n != 1 {
		t.Errorf("got %v request/bios/acked, want 1", n)
	}
}

// TestServerIgnores sends what must get no reply, then a PXE DISCOVER to
// show the server still serves.
func TestServerIgnores(t *testing.T) {
	ignore := policyFunc(func(c Client) (Verdict, error) {
		if c.ClientArch == 11 {
			return Verdict{Reason: "unknown: ignore"}, nil
		}
		return Verdict{Answer: true}, nil
	})
	rig := startServer(t, false, ignore)
	c := client(t, rig.addr)

	tests := []struct {
		name   string
		send   func(t *testing.T)
		labels []string
	}{
		{"plain DHCP", func(t *testing.T) { discoverNoReply(t, c) }, []string{"discover", "none", "ignored", "not_pxe"}},
		{"policy ignore", func(t *testing.T) { discoverNoReply(t, c, firmware(11)...) }, []string{"discover", "efi-arm64", "ignored", "policy"}},
		{"no binary", func(t *testing.T) { discoverNoReply(t, c, firmware(6)...) }, []string{"discover", "efi-ia32", "ignored", "no_binary"}},
		{"garbage", func(t *testing.T) { sendRaw(t, rig.addr, []byte("not a DHCP packet")) }, []string{"malformed", "none", "error", "malformed"}},
		{"truncated header", func(t *testing.T) {
			sendRaw(t, rig.addr, packet(t, dhcpv4.MessageTypeDiscover, firmware(7)...).ToBytes()[:200])
		}, []string{"malformed", "none", "error", "malformed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.send(t)
			waitFor(t, func() bool { return testutil.ToFloat64(rig.metrics.packets.WithLabelValues(tt.labels...)) >= 1 })
		})
	}
	if _, err := c.DiscoverOffer(t.Context(), firmware(0)...); err != nil {
		t.Fatalf("after bad packets, DiscoverOffer: %v", err)
	}
	if logs := rig.log(t); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "reason=no_binary") {
		t.Errorf("got log\n%s\nwant a Warn line with reason=no_binary", logs)
	}
}

// discoverNoReply sends a DISCOVER and expects no OFFER.
func discoverNoReply(t *testing.T, c *nclient4.Client, mods ...dhcpv4.Modifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	offer, err := c.DiscoverOffer(ctx, mods...)
	if err == nil {
		t.Fatalf("got an offer, want none:\n%s", offer.Summary())
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nclient4.ErrNoResponse) {
		t.Fatalf("got %v, want no response", err)
	}
}

// TestServerRelay checks a relayed DISCOVER is answered to giaddr:67. It
// needs root for port 67; the relay is 127.0.0.2.
func TestServerRelay(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to listen on port 67 as the relay agent")
	}
	relay, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: dhcpv4.ServerPort})
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2:67 as the relay agent: %v", err)
	}
	defer relay.Close()
	rig := startServer(t, false, nil)
	req := packet(t, dhcpv4.MessageTypeDiscover, append(firmware(7), dhcpv4.WithGatewayIP(net.IPv4(127, 0, 0, 2)))...)
	if _, err := relay.WriteToUDP(req.ToBytes(), rig.addr); err != nil {
		t.Fatal(err)
	}
	_ = relay.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := relay.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("relay got no reply: %v", err)
	}
	r, err := dhcpv4.FromBytes(buf[:n])
	if err != nil {
		t.Fatalf("reply does not parse: %v", err)
	}
	checkReply(t, req, r, loopback)
	if !from.IP.Equal(loopback) || !r.GatewayIPAddr.Equal(net.IPv4(127, 0, 0, 2)) {
		t.Errorf("got reply from %v with giaddr %v, want from 127.0.0.1 with giaddr 127.0.0.2", from, r.GatewayIPAddr)
	}
}

func TestListenBusyPort(t *testing.T) {
	// A socket without SO_REUSEADDR/SO_REUSEPORT holds the port exclusively.
	held, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.LocalAddr().(*net.UDPAddr).Port
	conn, err := Listen(t.Context(), "proxyDHCP", "", port)
	if err == nil {
		conn.Close()
		t.Fatal("got a socket on a held port, want an error")
	}
	var be *bind.Err
	if !errors.As(err, &be) || be.Port != strconv.Itoa(port) || !strings.Contains(err.Error(), "proxyDHCP: bind udp port") {
		t.Errorf("got %v, want a bind.Err naming port %d", err, port)
	}
}

func TestListenNoSuchInterface(t *testing.T) {
	conn, err := Listen(t.Context(), "proxyDHCP", "tbx-missing0", 0)
	if err == nil {
		conn.Close()
		t.Fatal("got a socket on a missing interface, want an error")
	}
	if !strings.Contains(err.Error(), "tbx-missing0") {
		t.Errorf("got %v, want the interface named", err)
	}
}

func TestSharers(t *testing.T) {
	listen := func(t *testing.T, iface string, port int) *net.UDPConn {
		t.Helper()
		c, err := Listen(t.Context(), "proxyDHCP", iface, port)
		if err != nil {
			t.Fatalf("Listen(%q, %d): %v", iface, port, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	sharers := func(t *testing.T, c *net.UDPConn) []string {
		t.Helper()
		got, err := Sharers(c)
		if err != nil {
			t.Fatalf("Sharers: %v", err)
		}
		return got
	}

	a := listen(t, "", 0)
	if got := sharers(t, a); len(got) != 0 {
		t.Fatalf("alone: got %q, want none", got)
	}
	port := a.LocalAddr().(*net.UDPAddr).Port
	listen(t, "", port)
	got := sharers(t, a)
	want := "on 0.0.0.0:" + strconv.Itoa(port) + " (any interface)"
	if len(got) != 1 || !strings.HasSuffix(got[0], want) || !strings.Contains(got[0], "(pid ") {
		t.Fatalf("got %q, want one sharer named by process, %q", got, want)
	}

	t.Run("bound to different interfaces", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("SO_BINDTODEVICE needs root")
		}
		other := otherInterface(t)
		lo := listen(t, "lo", 0)
		port := lo.LocalAddr().(*net.UDPAddr).Port
		listen(t, other, port)
		if got := sharers(t, lo); len(got) != 0 {
			t.Errorf("got %q, want none: a socket bound to %s never sees lo's packets", got, other)
		}
		listen(t, "", port)
		if got := sharers(t, lo); len(got) != 1 || !strings.HasSuffix(got[0], "(any interface)") {
			t.Errorf("got %q, want the unbound socket", got)
		}
	})
}

// otherInterface names an interface that is not loopback; the test only
// binds sockets to it and sends nothing.
func otherInterface(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback == 0 {
			return i.Name
		}
	}
	t.Skip("no interface besides loopback")
	return ""
}

// TestServerObservesLeaseRequests: firmware's REQUEST for the router's
// lease gets no reply, but the Observer learns the address it will use.
func TestServerObservesLeaseRequests(t *testing.T) {
	rig := startServer(t, false, nil)
	leased := net.IPv4(192, 0, 2, 55)
	req := packet(t, dhcpv4.MessageTypeRequest, append(firmware(0),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(192, 0, 2, 1))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(leased)))...)
	sendRaw(t, rig.addr, req.ToBytes())
	deadline := time.Now().Add(3 * time.Second)
	for len(rig.rec.seen()) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	seen := rig.rec.seen()
	if len(seen) != 1 || !seen[0].RequestedIP.Equal(leased) || seen[0].MAC.String() != testMAC.String() {
		t.Fatalf("observed %+v, want one client %s at %s", seen, testMAC, leased)
	}
	if got := rig.rec.all(); len(got) != 0 {
		t.Errorf("a REQUEST for another server got a reply: %+v", got)
	}
}

// TestServerNoBinaryWarnsOnce: firmware the proxy has no binary for retries
// its DISCOVER; each retry is counted, but only the first from a MAC (and
// firmware) is a warning.
func TestServerNoBinaryWarnsOnce(t *testing.T) {
	rig := startServer(t, false, nil)
	c := client(t, rig.addr)
	for range 3 {
		discoverNoReply(t, c, firmware(21)...) // 32-bit ARM U-Boot
	}
	labels := []string{"discover", "uboot-arm32", "ignored", "no_binary"}
	waitFor(t, func() bool { return testutil.ToFloat64(rig.metrics.packets.WithLabelValues(labels...)) >= 3 })
	other, err := nclient4.New("", nclient4.WithUnicast(&net.UDPAddr{IP: loopback}),
		nclient4.WithHWAddr(net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0x99}), nclient4.WithServerAddr(rig.addr),
		nclient4.WithTimeout(300*time.Millisecond), nclient4.WithRetry(1))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Close() }()
	discoverNoReply(t, other, firmware(21)...)
	waitFor(t, func() bool { return testutil.ToFloat64(rig.metrics.packets.WithLabelValues(labels...)) >= 4 })
	logs := rig.log(t)
	if n := strings.Count(logs, "level=WARN"); n != 2 || !strings.Contains(logs, "mac=52:54:00:12:34:56") || !strings.Contains(logs, "mac=52:54:00:00:00:99") {
		t.Errorf("got %d Warn lines, want one per MAC (2):\n%s", n, logs)
	}
}

// TestServerReplyDelay: with a reply delay the offer still arrives, and not
// before the delay.
func TestServerReplyDelay(t *testing.T) {
	const delay = 300 * time.Millisecond
	rig := startServer(t, false, nil, func(o *Options) { o.ReplyDelay = delay })
	c, err := nclient4.New("", nclient4.WithUnicast(&net.UDPAddr{IP: loopback}), nclient4.WithHWAddr(testMAC),
		nclient4.WithServerAddr(rig.addr), nclient4.WithTimeout(5*time.Second), nclient4.WithRetry(3))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	start := time.Now()
	offer, err := c.DiscoverOffer(t.Context(), firmware(7)...)
	if err != nil {
		t.Fatalf("DiscoverOffer: %v", err)
	}
	if took := time.Since(start); took < delay || offer.BootFileName != "snponly.efi" {
		t.Errorf("got %q after %v, want snponly.efi after at least %v", offer.BootFileName, took, delay)
	}
}

// TestServerScriptURL checks, over a real socket, that iPXE's DISCOVER is
// sent to the address it reached the responder on (127.0.0.1, from
// IP_PKTINFO) when advertise is not pinned, and to advertise when it is.
func TestServerScriptURL(t *testing.T) {
	for _, tt := range []struct {
		name      string
		advertise netip.Addr
		want      string
	}{
		{"not pinned", netip.Addr{}, "http://127.0.0.1:8080/boot.ipxe"},
		{"pinned", netip.MustParseAddr("192.0.2.10"), "http://192.0.2.10:8080/boot.ipxe"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rig := startServer(t, false, nil, func(o *Options) { o.Config.Advertise = tt.advertise })
			offer, err := client(t, rig.addr).DiscoverOffer(t.Context(), ipxeClient(7)...)
			if err != nil {
				t.Fatalf("DiscoverOffer: %v", err)
			}
			if offer.BootFileName != tt.want {
				t.Errorf("got file %q, want %q", offer.BootFileName, tt.want)
			}
			if !offer.ServerIPAddr.Equal(loopback) {
				t.Errorf("got siaddr %s, want %s", offer.ServerIPAddr, loopback)
			}
		})
	}
}
