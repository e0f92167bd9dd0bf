//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"pack.ag/tftp"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tinderbox-boot/tinderbox/internal/config"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/internal/talosevents"
	"github.com/tinderbox-boot/tinderbox/pkg/fakefactory"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// node is a simulated machine walking the boot sequence of
// docs/architecture.md ("A boot, step by step") against a daemon on
// loopback, with real clients for every protocol.
type node struct {
	t      *testing.T
	d      *daemon
	mac    net.HardwareAddr
	dhcp   int // the daemon's DHCP port
	pxe    int // the daemon's port-4011 listener
	client *http.Client
}

// exchange sends a DISCOVER with mods to port and returns the offer, then
// REQUESTs it on the PXE port (as OVMF does) and returns the ack.
func (n *node) exchange(mods ...dhcpv4.Modifier) (offer, ack *dhcpv4.DHCPv4) {
	n.t.Helper()
	ask := func(port int, f func(*nclient4.Client, *net.UDPAddr) (*dhcpv4.DHCPv4, error)) *dhcpv4.DHCPv4 {
		n.t.Helper()
		server := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
		c, err := nclient4.New("", nclient4.WithUnicast(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}),
			nclient4.WithHWAddr(n.mac), nclient4.WithServerAddr(server), nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(2))
		if err != nil {
			n.t.Fatal(err)
		}
		defer c.Close()
		p, err := f(c, server)
		if err != nil {
			n.t.Fatalf("DHCP to port %d: %v", port, err)
		}
		return p
	}
	offer = ask(n.dhcp, func(c *nclient4.Client, _ *net.UDPAddr) (*dhcpv4.DHCPv4, error) {
		return c.DiscoverOffer(n.t.Context(), mods...)
	})
	ack = ask(n.pxe, func(c *nclient4.Client, server *net.UDPAddr) (*dhcpv4.DHCPv4, error) {
		req, err := dhcpv4.NewRequestFromOffer(offer, append(mods, dhcpv4.WithClientIP(net.IPv4(127, 0, 0, 1)))...)
		if err != nil {
			return nil, err
		}
		req.Options.Del(dhcpv4.OptionServerIdentifier) // firmware asks port 4011 without it
		return c.SendAndRead(n.t.Context(), server, req, nclient4.IsMessageType(dhcpv4.MessageTypeAck))
	})
	return offer, ack
}

func (n *node) get(url string) (int, []byte) {
	n.t.Helper()
	resp, err := n.client.Get(url)
	if err != nil {
		n.t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		n.t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b
}

// machine returns the node's record once every queued record is written.
func (n *node) machine() state.Machine {
	n.t.Helper()
	if err := n.d.flow.Flush(n.t.Context()); err != nil {
		n.t.Fatal(err)
	}
	m, ok, err := n.d.state.Get(machine.MustParseMAC(n.mac.String()))
	if err != nil || !ok {
		n.t.Fatalf("state of %s: ok=%v err=%v", n.mac, ok, err)
	}
	return m
}

var (
	kernelRe = regexp.MustCompile(`(?m)^kernel (\S+) `)
	initrdRe = regexp.MustCompile(`(?m)^initrd (\S+) `)
	configRe = regexp.MustCompile(`talos\.config=(\S+)`)
)

func match(t *testing.T, re *regexp.Regexp, s string) string {
	t.Helper()
	m := re.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, s)
	}
	return m[1]
}

// TestSimulatedNodeBoot is issue 8's in-process end to end: fake factory,
// the repository's example profiles, tinderbox on loopback; a node walks
// firmware DHCP → TFTP → iPXE DHCP → /boot.ipxe → /ipxe → kernel and
// initramfs → config, then boots again and is told to boot its disk, and
// after `tinderbox machines reinstall` netboots again.
func TestSimulatedNodeBoot(t *testing.T) {
	ff, err := fakefactory.Start(fakefactory.Options{Redirect: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ff.Close)

	cfg := testConfig(t)
	cfg.Profiles.Dir = filepath.Join("..", "..", "profiles")
	cfg.Factory.URL = ff.URL
	cfg.DHCP.Enabled, cfg.DHCP.Port, cfg.DHCP.PXEPort = true, freeUDPPort(t), freeUDPPort(t)
	cfg.TFTP.Enabled = true
	cfg.Reports.Enabled, cfg.Reports.EventsListen, cfg.Reports.LogsListen = true, "127.0.0.1:0", "127.0.0.1:0"
	ipxeEFI := bytes.Repeat([]byte("iPXE for UEFI "), 5000)
	if err := os.MkdirAll(cfg.IPXE.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.IPXE.Dir, "ipxe.efi"), ipxeEFI, 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := startDaemon(t, cfg)
	base := "http://" + d.httpAddr.String()
	n := &node{t: t, d: d, mac: net.HardwareAddr{0x1c, 0x69, 0x7a, 0, 0, 0x11}, dhcp: cfg.DHCP.Port, pxe: cfg.DHCP.PXEPort,
		client: &http.Client{Timeout: 10 * time.Second}}
	const mac = "1c:69:7a:00:00:11" // cp-01 in profiles/

	// 1. Firmware (EDK2, x86-64 UEFI) DHCP: proxy offer of ipxe.efi, then the port-4011 ack.
	firmware := []dhcpv4.Modifier{
		dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
		dhcpv4.WithGeneric(dhcpv4.OptionClientSystemArchitectureType, []byte{0, 7}),
		dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, bytes.Repeat([]byte{0x11}, 16)...)),
	}
	offer, ack := n.exchange(firmware...)
	if offer.BootFileName != "ipxe.efi" || ack.BootFileName != "ipxe.efi" || offer.YourIPAddr != nil && !offer.YourIPAddr.IsUnspecified() {
		t.Fatalf("firmware: offer file %q yiaddr %v, ack file %q", offer.BootFileName, offer.YourIPAddr, ack.BootFileName)
	}

	// 2. TFTP: iPXE itself.
	c, err := tftp.NewClient(tftp.ClientBlocksize(1468), tftp.ClientRetransmit(5))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Get("tftp://" + d.tftpAddr.String() + "/ipxe.efi")
	if err != nil {
		t.Fatalf("TFTP: %v", err)
	}
	got, err := io.ReadAll(resp)
	if err != nil || !bytes.Equal(got, ipxeEFI) {
		t.Fatalf("TFTP ipxe.efi: %d bytes, err %v; want the %d bytes on disk", len(got), err, len(ipxeEFI))
	}

	// 3. iPXE's own DHCP gets the script URL.
	offer, _ = n.exchange(append(firmware, dhcpv4.WithGeneric(dhcpv4.OptionUserClassInformation, []byte("iPXE")))...)
	if offer.BootFileName != base+"/boot.ipxe" {
		t.Fatalf("iPXE offer: file %q, want %s/boot.ipxe", offer.BootFileName, base)
	}

	// 4. /boot.ipxe, then this machine's script as the chain line asks for it.
	code, body := n.get(offer.BootFileName)
	if code != http.StatusOK || !strings.Contains(string(body), "chain --replace "+base+"/ipxe?mac=${${nic}/mac:hexhyp}") {
		t.Fatalf("/boot.ipxe: %d\n%s", code, body)
	}
	scriptURL := base + "/ipxe?mac=1c-69-7a-00-00-11&uuid=11111111-1111-1111-1111-111111111111&arch=x86_64"
	code, body = n.get(scriptURL)
	script := string(body)
	if code != http.StatusOK || !strings.Contains(script, "talos.platform=") {
		t.Fatalf("/ipxe: %d\n%s", code, script)
	}

	// 5. Kernel and initramfs from the cache, fetched once from the factory.
	for _, re := range []*regexp.Regexp{kernelRe, initrdRe} {
		url := match(t, re, script)
		file := url[strings.LastIndex(url, "/")+1:]
		for range 2 {
			code, b := n.get(url)
			if code != http.StatusOK || !bytes.Equal(b, ff.Asset(file)) {
				t.Fatalf("GET %s: %d, %d bytes; want the factory's %d", url, code, len(b), len(ff.Asset(file)))
			}
		}
	}
	for path, count := range ff.Counts() {
		if strings.Contains(path, "/kernel-amd64") && count != 1 {
			t.Errorf("factory fetches of %s: got %d, want 1", path, count)
		}
	}

	// 6. The config, exactly as `tinderbox render` prints it.
	configURL := match(t, configRe, script)
	code, served := n.get(configURL)
	if code != http.StatusOK {
		t.Fatalf("config: %d %s", code, served)
	}
	var rendered bytes.Buffer
	if err := execute(t.Context(), []string{"render", mac, "--config", writeConfig(t, cfg, d)}, &rendered, io.Discard); err != nil {
		t.Fatalf("tinderbox render: %v", err)
	}
	if !bytes.Equal(served, rendered.Bytes()) {
		t.Errorf("served config differs from tinderbox render:\n%s\n---\n%s", served, rendered.Bytes())
	}
	if m := n.machine(); m.State != machine.Installing || m.UUID == "" || m.Arch != "amd64" {
		t.Errorf("after config: got %+v", m)
	}

	// 6b. Talos reports: its log lines (and one garbage line) on the log
	// receiver, and its install's start and end on the event sink.
	talosReports(t, d, match(t, sinkRe, script),
		talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStart},
		talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop})
	if m := n.machine(); m.State != machine.Installed || !m.Reporting {
		t.Errorf("after Talos reported its install: %s, reporting %v", m.State, m.Reporting)
	}

	// 7. Next boot: told to boot the local disk.
	code, body = n.get(scriptURL)
	if code != http.StatusOK || !strings.Contains(string(body), "\nexit 1\n") {
		t.Fatalf("second boot: %d\n%s", code, body)
	}
	if m := n.machine(); m.State != machine.Installed {
		t.Errorf("after second boot: state %q, want installed", m.State)
	}

	// 7b. Talos reports it runs, ready, from the disk.
	talosReports(t, d, match(t, sinkRe, script), talosevents.MachineStatusEvent{Stage: talosevents.StageRunning, Ready: true})
	if m := n.machine(); m.State != machine.Ready {
		t.Errorf("after Talos reported running and ready: %s", m.State)
	}

	// 8. Re-armed through the CLI and the admin API: netboots with a new token.
	var out bytes.Buffer
	if err := execute(t.Context(), []string{"machines", "reinstall", mac, "--server", "http://" + d.adminAddr.String()}, &out, io.Discard); err != nil {
		t.Fatalf("machines reinstall: %v", err)
	}
	_, body = n.get(scriptURL)
	newConfigURL := match(t, configRe, string(body))
	if newConfigURL == configURL {
		t.Error("reinstall did not rotate the config token")
	}
	if code, _ := n.get(configURL); code != http.StatusForbidden {
		t.Errorf("old config URL after reinstall: got %d, want 403", code)
	}

	var kinds []string
	for _, e := range n.machine().Events {
		kinds = append(kinds, string(e.Kind))
	}
	for _, want := range []machine.EventKind{machine.EventDHCPOffer, machine.EventTFTP, machine.EventScript, machine.EventKernel, machine.EventInitramfs, machine.EventConfig, machine.EventLocalBoot, machine.EventReinstall} {
		if !strings.Contains(" "+strings.Join(kinds, " ")+" ", " "+string(want)+" ") {
			t.Errorf("event log lacks %s: %v", want, kinds)
		}
	}

	// 9. By now every metric family has a series: the daemon's metrics
	// match testdata/metrics.golden.
	t.Run("metrics", func(t *testing.T) { checkMetrics(t, d) })
}

// writeConfig writes cfg as a config file for the CLI, with the listen
// addresses the daemon actually bound, so `render` names the same URL.
func writeConfig(t *testing.T, cfg *config.Config, d *daemon) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tinderbox.yaml")
	writeFile(t, path, "advertise: "+cfg.Advertise+"\n"+
		"http: {listen: \""+d.httpAddr.String()+"\"}\n"+
		"dhcp: {enabled: false}\ntftp: {enabled: false}\n"+
		"factory: {url: \""+cfg.Factory.URL+"\"}\n"+
		"cache: {dir: "+cfg.Cache.Dir+"}\nstate: {dir: "+t.TempDir()+"}\n"+
		"profiles: {dir: "+cfg.Profiles.Dir+"}\n")
	return path
}

// talosReports publishes msgs to the daemon's event sink as a node's Talos
// would, and the first time sends log lines over TCP (one of them
// garbage) and UDP, so every receiver metric has a series.
func talosReports(t *testing.T, d *daemon, sink string, msgs ...any) {
	t.Helper()
	conn, err := grpc.NewClient(sink, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, m := range msgs {
		if err := talosevents.Publish(t.Context(), conn, fmt.Sprintf("%T-%p", m, &m), m); err != nil {
			t.Fatalf("publish %T: %v", m, err)
		}
	}
	c, err := net.Dial("tcp", d.logsAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, `{"facility":"user","msg":"[talos] installing","priority":"info","talos-level":"info"}`+"\nnot json\n"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	u, err := net.Dial("udp", d.logsAddr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := io.WriteString(u, `{"msg":"[talos] installed"}`); err != nil {
		t.Fatal(err)
	}
	// The receiver counts as it reads, after our writes returned.
	for _, name := range []string{"tinderbox_kmsglog_connections_closed_total", "tinderbox_kmsglog_lines_dropped_total"} {
		waitFamily(t, d, name)
	}
	for i := 0; len(d.logs.Search(machine.MustParseMAC("1c:69:7a:00:00:11"), "installed")) == 0; i++ {
		if i == 500 {
			t.Fatal("the UDP log line never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFamily waits until the daemon's registry has a series of name.
func waitFamily(t *testing.T, d *daemon, name string) {
	t.Helper()
	for range 500 {
		mfs, err := d.registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.GetMetric()) > 0 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no series of %s", name)
}
