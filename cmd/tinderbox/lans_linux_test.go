//go:build linux

package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/tinderbox-boot/tinderbox/internal/netnstest"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
)

// twoLANsEnv carries the client namespaces, "NS1,NS2", to the copy of the
// test binary that runs inside the server's namespace.
const twoLANsEnv = "TINDERBOX_TEST_TWO_LANS"

// TestTwoLANs is issue 18's "one server, two LANs": a server namespace
// with lan1 (10.98.1.1/24) and lan2 (10.98.2.1/24), a client namespace on
// each, and tinderbox with dhcp.interfaces [lan1, lan2] and advertise not
// pinned. From each LAN, iPXE's broadcast DISCOVER gets a script URL on
// that LAN, and /boot.ipxe and /ipxe name only that LAN's address (chain,
// kernel, initrd, talos.config, event sink, log receiver).
//
// The responder looks up the receiving interface's addresses on the
// thread that handles the packet, so the daemon must run with its whole
// process in the server namespace: the test makes the namespaces, then
// runs itself again there (ip netns exec) to do the rest.
func TestTwoLANs(t *testing.T) {
	if clients := os.Getenv(twoLANsEnv); clients != "" {
		ns := strings.Split(clients, ",")
		twoLANsInside(t, ns)
		return
	}
	netnstest.Require(t)
	server := netnstest.New(t)
	var clients []string
	for i := 1; i <= 2; i++ {
		c := netnstest.New(t)
		clients = append(clients, c)
		lan := fmt.Sprintf("lan%d", i)
		netnstest.IP(t, "-n", server, "link", "add", lan, "type", "veth", "peer", "name", "eth0", "netns", c)
		netnstest.IP(t, "-n", server, "addr", "add", fmt.Sprintf("10.98.%d.1/24", i), "dev", lan)
		netnstest.IP(t, "-n", server, "link", "set", lan, "up")
		netnstest.IP(t, "-n", c, "link", "set", "eth0", "address", fmt.Sprintf("52:54:00:98:0%d:0b", i))
		netnstest.IP(t, "-n", c, "addr", "add", fmt.Sprintf("10.98.%d.11/24", i), "dev", "eth0")
		netnstest.IP(t, "-n", c, "link", "set", "eth0", "up")
	}
	out := netnstest.Rerun(t, twoLANsEnv+"="+strings.Join(clients, ","), []string{"TestTwoLANs/lan1", "TestTwoLANs/lan2"},
		"ip", "netns", "exec", server)
	t.Logf("inside the server namespace:\n%s", out)
}

// twoLANsInside is TestTwoLANs in the server's namespace; clients are the
// namespaces on lan1 and lan2.
func twoLANsInside(t *testing.T, clients []string) {
	ff, err := fakefactory.Start(fakefactory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ff.Close)
	cfg := testConfig(t)
	cfg.Advertise, cfg.AdvertisePinned = "10.98.1.1", false // as Load fills it from lan1
	cfg.HTTP.Listen = ":0"
	cfg.Profiles.Dir = filepath.Join("..", "..", "profiles")
	cfg.Factory.URL = ff.URL
	cfg.DHCP.Enabled, cfg.DHCP.Interfaces, cfg.DHCP.Port, cfg.DHCP.PXEPort = true, []string{"lan1", "lan2"}, 67, 4011
	cfg.Reports.Enabled, cfg.Reports.EventsListen, cfg.Reports.LogsListen = true, ":0", ":0"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	d, _ := startDaemon(t, cfg)
	httpPort := strconv.Itoa(d.httpAddr.(*net.TCPAddr).Port)
	eventsPort := strconv.Itoa(d.eventsAddr.(*net.TCPAddr).Port)
	logsPort := strconv.Itoa(d.logsAddr.(*net.TCPAddr).Port)

	for i, ns := range clients {
		lan := fmt.Sprintf("10.98.%d.1", i+1)
		t.Run("lan"+strconv.Itoa(i+1), func(t *testing.T) {
			offer := ipxeDiscover(t, ns)
			if want := "http://" + lan + ":" + httpPort + "/boot.ipxe"; offer.BootFileName != want {
				t.Errorf("iPXE offer: got file %q, want %q", offer.BootFileName, want)
			}
			if !offer.ServerIPAddr.Equal(net.ParseIP(lan)) {
				t.Errorf("iPXE offer: got siaddr %s, want %s", offer.ServerIPAddr, lan)
			}

			hc := clientIn(t, ns)
			base := "http://" + lan + ":" + httpPort
			chain := getOK(t, hc, base+"/boot.ipxe")
			onLAN(t, chain, lan, httpPort, eventsPort, logsPort)
			script := getOK(t, hc, base+"/ipxe?mac=1c-69-7a-00-00-11&arch=x86_64") // cp-01 in profiles/
			for _, want := range []string{
				"kernel " + base + "/assets/", "initrd " + base + "/assets/", "talos.config=" + base + "/config/1c-69-7a-00-00-11?token=",
				"talos.events.sink=" + lan + ":" + eventsPort, "talos.logging.kernel=tcp://" + lan + ":" + logsPort + "/",
			} {
				if !strings.Contains(script, want) {
					t.Errorf("/ipxe lacks %q:\n%s", want, script)
				}
			}
			onLAN(t, script, lan, httpPort, eventsPort, logsPort)
		})
	}
}

// ipxeDiscover broadcasts iPXE's DISCOVER (x86-64 UEFI) on eth0 of the
// namespace ns and returns the proxy offer.
func ipxeDiscover(t *testing.T, ns string) *dhcpv4.DHCPv4 {
	t.Helper()
	var (
		c   *nclient4.Client
		err error
	)
	netnstest.Run(t, ns, func() {
		c, err = nclient4.New("eth0", nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(3))
	})
	if err != nil {
		t.Fatalf("nclient4 in %s: %v", ns, err)
	}
	defer c.Close()
	offer, err := c.DiscoverOffer(t.Context(),
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003010")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}),
		dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")))
	if err != nil {
		t.Fatalf("DISCOVER from %s: %v", ns, err)
	}
	return offer
}

// clientIn returns an HTTP client whose connections are made in ns.
func clientIn(t *testing.T, ns string) *http.Client {
	dial := func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		netnstest.Run(t, ns, func() { c, err = (&net.Dialer{}).DialContext(ctx, network, addr) })
		return c, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

// getOK is get for a 200 answer: anything else fails the test.
func getOK(t *testing.T, hc *http.Client, url string) string {
	t.Helper()
	code, body := get(t, hc, url)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", url, code, body)
	}
	return body
}

// hostPortRe finds every address a script hands its node: URLs, the event
// sink and the log receiver.
var hostPortRe = regexp.MustCompile(`(?:http://|tcp://|talos\.events\.sink=)([0-9.]+):([0-9]+)`)

// onLAN fails unless every address in script is lan, on one of
// tinderbox's ports.
func onLAN(t *testing.T, script, lan string, ports ...string) {
	t.Helper()
	all := hostPortRe.FindAllStringSubmatch(script, -1)
	if len(all) == 0 {
		t.Fatalf("no address in:\n%s", script)
	}
	for _, m := range all {
		if m[1] != lan || !slices.Contains(ports, m[2]) {
			t.Errorf("script names %s:%s, want %s on one of ports %v", m[1], m[2], lan, ports)
		}
	}
}
