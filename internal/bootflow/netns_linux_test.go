package bootflow

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/internal/evidence"
	"github.com/tinderbox-boot/tinderbox/internal/netnstest"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// lan builds, in namespaces of its own, a boot LAN: a bridge in the server
// namespace (10.77.0.1/24) and one namespace per client with a veth on the
// bridge, its own MAC and address. It returns the namespaces' names: the
// server's, and each client's by its key. Everything is removed at cleanup.
func lan(t *testing.T, clients map[string]struct{ mac, ip string }) (server string, names map[string]string) {
	t.Helper()
	server = netnstest.New(t)
	netnstest.IP(t, "-n", server, "link", "add", "br0", "type", "bridge")
	netnstest.IP(t, "-n", server, "addr", "add", "10.77.0.1/24", "dev", "br0")
	netnstest.IP(t, "-n", server, "link", "set", "br0", "up")
	names = map[string]string{}
	i := 0
	for key, c := range clients {
		ns := netnstest.New(t)
		names[key] = ns
		port := fmt.Sprintf("p%d", i)
		i++
		netnstest.IP(t, "-n", server, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		netnstest.IP(t, "-n", server, "link", "set", port, "master", "br0", "up")
		netnstest.IP(t, "-n", ns, "link", "set", "eth0", "address", c.mac)
		netnstest.IP(t, "-n", ns, "addr", "add", c.ip+"/24", "dev", "eth0")
		netnstest.IP(t, "-n", ns, "link", "set", "eth0", "up")
	}
	return server, names
}

// TestBindingOnARealLAN runs the boot flow with the kernel's own neighbour
// table in a test-made namespace: two clients with different MACs on one
// bridge, one of them cp-01. cp-01 gets its token and config; the other
// host, asking for cp-01, gets neither, and cp-01's state does not move.
func TestBindingOnARealLAN(t *testing.T) {
	const (
		macA, ipA = "52:54:00:00:00:01", "10.77.0.11" // cp-01 (macOnce)
		macB, ipB = "02:00:00:00:00:0b", "10.77.0.12"
	)
	server, names := lan(t, map[string]struct{ mac, ip string }{"a": {macA, ipA}, "b": {macB, ipB}})

	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	profs := &fakeProfiles{policy: machine.UnknownMaintenance, machines: map[machine.MAC]profiles.Profile{
		macOnce: {Hostname: "cp-01", Install: machine.InstallOnce, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}},
	}}
	var (
		kernel *evidence.Kernel
		ln     net.Listener
	)
	if kernel, err = evidence.OpenKernel(nil, server); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kernel.Close() })
	netnstest.Run(t, server, func() { ln, err = net.Listen("tcp4", "10.77.0.1:0") })
	if err != nil {
		t.Fatal(err)
	}
	binder, err := evidence.New(evidence.Options{Enabled: true, Neighbours: kernel})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	base := "http://" + ln.Addr().String()
	f := New(Options{BaseURL: base, LocalBoot: "exit", Store: store, Profiles: profs, Cmdlines: fakeCmdlines{},
		Evidence: binder, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	r := chi.NewRouter()
	f.Mount(r)
	srv := &http.Server{Handler: r}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	// get fetches a URL over a connection made in the client's namespace.
	get := func(client, url string) (int, string) {
		t.Helper()
		dial := func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			netnstest.Run(t, names[client], func() {
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			})
			return c, err
		}
		hc := &http.Client{Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
		resp, err := hc.Get(url)
		if err != nil {
			t.Fatalf("%s: GET %s: %v", client, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	scriptURL := base + scriptPath(macOnce)

	if code, body := get("b", scriptURL); code != http.StatusForbidden || strings.Contains(body, "token=") {
		t.Errorf("b asking for cp-01: got %d %q, want 403 without a token", code, body)
	}
	code, body := get("a", scriptURL)
	if code != http.StatusOK || !strings.Contains(body, "token=") {
		out, _ := exec.Command("ip", "-n", server, "neigh").CombinedOutput()
		mac, ok, err := kernel.Lookup(netip.MustParseAddr(ipA))
		t.Fatalf("cp-01's own script: got %d %q\n%s\nneigh:\n%s\nlookup now: %s %v %v following %v", code, body, logs, out, mac, ok, err, kernel.Following())
	}
	cfgURL := configURLRe.FindStringSubmatch(body)[1]
	if code, body := get("b", cfgURL); code != http.StatusForbidden || body != refusedConfig {
		t.Errorf("b with cp-01's config URL: got %d %q, want the uniform refusal", code, body)
	}
	if m, _, _ := store.Get(macOnce); m.State != machine.Pending {
		t.Errorf("after b's requests: cp-01 is %s, want pending", m.State)
	}
	if code, _ := get("a", cfgURL); code != http.StatusOK {
		t.Errorf("cp-01's own config: got %d, want 200", code)
	}
	if m, _, _ := store.Get(macOnce); m.State != machine.Installing || m.IP != ipA {
		t.Errorf("after cp-01's config: got %s at %s, want installing at %s", m.State, m.IP, ipA)
	}
	want := "request for cp-01 (52:54:00:00:00:01) from " + ipB + ", which is " + macB
	if !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, logs)
	}
}
