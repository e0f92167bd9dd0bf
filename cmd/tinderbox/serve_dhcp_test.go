//go:build linux

package main

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tinderbox-boot/tinderbox/internal/config"
)

// freeUDPPort returns a port nothing holds right now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func TestDHCPDisabledAddsNothing(t *testing.T) {
	d, err := newDaemon(t.Context(), testConfig(t), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range d.closers {
			_ = c()
		}
	}()
	for _, s := range d.servers {
		if strings.HasPrefix(s.name, "proxyDHCP") {
			t.Errorf("got server %q with dhcp.enabled false", s.name)
		}
	}
}

// TestDHCPServesBothPorts runs the daemon with the responder on two
// ephemeral ports and asks both with nclient4 over loopback, as iPXE would:
// the boot script URL must name the boot HTTP server's bound port.
func TestDHCPServesBothPorts(t *testing.T) {
	cfg := testConfig(t)
	cfg.DHCP.Enabled = true
	cfg.DHCP.Port = freeUDPPort(t)
	cfg.DHCP.PXEPort = freeUDPPort(t)
	d, stop := startDaemon(t, cfg)
	wantFile := "http://127.0.0.1:" + strconv.Itoa(d.httpAddr.(*net.TCPAddr).Port) + "/boot.ipxe"
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}
	ipxe := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003010")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}),
		dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")),
	}
	for _, port := range []int{cfg.DHCP.Port, cfg.DHCP.PXEPort} {
		server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		c, err := nclient4.New("", nclient4.WithUnicast(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}),
			nclient4.WithHWAddr(mac), nclient4.WithServerAddr(server), nclient4.WithTimeout(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		offer, err := c.DiscoverOffer(t.Context(), ipxe...)
		if err != nil {
			c.Close()
			t.Fatalf("port %d: DiscoverOffer: %v", port, err)
		}
		req, err := dhcpv4.NewRequestFromOffer(offer, append(ipxe, dhcpv4.WithClientIP(net.IPv4(127, 0, 0, 1)))...)
		if err != nil {
			c.Close()
			t.Fatal(err)
		}
		ack, err := c.SendAndRead(t.Context(), server, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck))
		c.Close()
		if err != nil {
			t.Fatalf("port %d: REQUEST naming tinderbox: %v", port, err)
		}
		for _, r := range []*dhcpv4.DHCPv4{offer, ack} {
			if r.BootFileName != wantFile || !r.ServerIdentifier().Equal(net.IPv4(127, 0, 0, 1)) {
				t.Errorf("port %d %s: got file %q server %v, want %q from 127.0.0.1", port, r.MessageType(), r.BootFileName, r.ServerIdentifier(), wantFile)
			}
		}
	}
	if n, err := testutil.GatherAndCount(d.registry, "tinderbox_dhcp_packets_total"); err != nil || n != 2 {
		t.Errorf("got %d tinderbox_dhcp_packets_total series (%v), want 2 (offered, acked)", n, err)
	}
	problems, err := testutil.GatherAndLint(d.registry, "tinderbox_dhcp_packets_total")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metrics lint: %s: %s", p.Metric, p.Text)
	}
	if err := stop(); err != nil {
		t.Errorf("Run after cancel: got %v, want nil", err)
	}
}

func TestDHCPBusyPortFailsAtStart(t *testing.T) {
	// Held without SO_REUSEADDR/SO_REUSEPORT, so nobody may share it.
	held, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.LocalAddr().(*net.UDPAddr).Port
	cfg := testConfig(t)
	cfg.DHCP.Enabled = true
	cfg.DHCP.Port = port
	cfg.DHCP.PXEPort = 0
	_, err = newDaemon(t.Context(), cfg, testLogger(t))
	if err == nil {
		t.Fatal("newDaemon with dhcp.port taken: got nil error")
	}
	for _, want := range []string{"proxyDHCP", "port " + strconv.Itoa(port), "address already in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestFailedStartFreesEveryPort: newDaemon failing after every socket is
// bound (profiles that do not load, and no last good set) releases them
// all: the proxyDHCP ports (bound with SO_REUSEPORT, where a leaked socket
// would silently share a restarted instance's packets), TFTP, the Talos
// receivers and both HTTP ports can each be bound again by a socket that
// shares with nobody.
func TestFailedStartFreesEveryPort(t *testing.T) {
	cfg := testConfig(t)
	cfg.DHCP.Enabled = true
	cfg.DHCP.Port = freeUDPPort(t)
	cfg.DHCP.PXEPort = freeUDPPort(t)
	cfg.TFTP.Enabled = true
	cfg.TFTP.Listen = "127.0.0.1:" + strconv.Itoa(freeUDPPort(t))
	cfg.HTTP.Listen = freeTCPAddr(t)
	cfg.Admin.Listen = freeTCPAddr(t)
	cfg.Reports = config.Reports{Enabled: true, EventsListen: freeTCPAddr(t), LogsListen: freeTCPAddr(t), StallAfter: time.Minute}
	writeFile(t, filepath.Join(cfg.Profiles.Dir, "defaults.yaml"), "talos: [broken\n")
	if _, err := newDaemon(t.Context(), cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), "no last good set") {
		t.Fatalf("newDaemon with broken profiles: got %v, want the profiles' error", err)
	}
	udp := []string{
		"0.0.0.0:" + strconv.Itoa(cfg.DHCP.Port), "0.0.0.0:" + strconv.Itoa(cfg.DHCP.PXEPort),
		cfg.TFTP.Listen, cfg.Reports.LogsListen,
	}
	for _, addr := range udp {
		c, err := net.ListenPacket("udp4", addr)
		if err != nil {
			t.Errorf("UDP %s still held after newDaemon failed: %v", addr, err)
			continue
		}
		c.Close()
	}
	for _, addr := range []string{cfg.HTTP.Listen, cfg.Admin.Listen, cfg.Reports.EventsListen, cfg.Reports.LogsListen} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("TCP %s still held after newDaemon failed: %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// TestStopFreesDHCPPorts: after Run returns, the proxyDHCP ports can be
// bound by a socket that shares with nobody.
func TestStopFreesDHCPPorts(t *testing.T) {
	cfg := testConfig(t)
	cfg.DHCP.Enabled = true
	cfg.DHCP.Port = freeUDPPort(t)
	cfg.DHCP.PXEPort = freeUDPPort(t)
	_, stop := startDaemon(t, cfg)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, port := range []int{cfg.DHCP.Port, cfg.DHCP.PXEPort} {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: port})
		if err != nil {
			t.Errorf("port %d still held after Run returned: %v", port, err)
			continue
		}
		c.Close()
	}
}
