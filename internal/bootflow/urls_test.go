package bootflow

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// advertised is the default advertise address the URL tests configure:
// no test listens on it, so a script naming it sends its node nowhere.
const advertised = "192.0.2.1"

// ownAt are tinderbox's own kernel arguments for host, as the daemon
// builds them (event sink port 8091, log receiver port 8092).
func ownAt(host netip.Addr) []string {
	return []string{
		"talos.events.sink=" + net.JoinHostPort(host.String(), "8091"),
		"talos.logging.kernel=tcp://" + net.JoinHostPort(host.String(), "8092") + "/",
	}
}

// urlFlow is a Flow for cp-01 (install once) with binding off, whose
// configured base URL is advertised's; pinned is Options.Pinned.
func urlFlow(t *testing.T, pinned bool) *Flow {
	t.Helper()
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	profs := &fakeProfiles{policy: machine.UnknownMaintenance, machines: map[machine.MAC]profiles.Profile{
		macOnce: {Hostname: "cp-01", Install: machine.InstallOnce, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}},
	}}
	return New(Options{
		BaseURL: "http://" + advertised + ":8080", Pinned: pinned, Own: ownAt(netip.MustParseAddr(advertised)), OwnAt: ownAt,
		LocalBoot: "exit", Store: store, Profiles: profs, Cmdlines: fakeCmdlines{},
	})
}

// serveOn serves f's endpoints on a listener bound to addr ("127.0.0.1:0");
// ok is false when this host cannot bind it (no IPv6 loopback).
func serveOn(t *testing.T, f *Flow, addr string) (base string, ok bool) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", false
	}
	r := chi.NewRouter()
	f.Mount(r)
	srv := &http.Server{Handler: r}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String(), true
}

// fetch GETs url with a client of its own and returns the 200 body.
func fetch(t *testing.T, hc *http.Client, url string) string {
	t.Helper()
	resp, err := hc.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: got %d %q, want 200", url, resp.StatusCode, b)
	}
	return string(b)
}

// Where a script names tinderbox: URLs, the event sink, the log receiver.
var (
	scriptURLRe = regexp.MustCompile(`http://([^/\s]+)/(\S*)`)
	sinkRe      = regexp.MustCompile(`talos\.events\.sink=(\S+)`)
	logsRe      = regexp.MustCompile(`talos\.logging\.kernel=tcp://([^/\s]+)/`)
)

// endpointsIn returns every host:port a script tells its node to reach,
// each with what it is: "kernel", "initrd", "config", "chain", "sink",
// "logs".
func endpointsIn(body string) map[string][]string {
	out := map[string][]string{}
	for _, m := range scriptURLRe.FindAllStringSubmatch(body, -1) {
		what := "url"
		path := m[2]
		switch {
		case strings.HasPrefix(path, "assets/") && strings.Contains(path, "/kernel-"):
			what = "kernel"
		case strings.HasPrefix(path, "assets/") && strings.Contains(path, "/initramfs-"):
			what = "initrd"
		case strings.HasPrefix(path, "config/"):
			what = "config"
		case strings.HasPrefix(path, "ipxe?"):
			what = "chain"
		}
		out[what] = append(out[what], m[1])
	}
	for _, m := range sinkRe.FindAllStringSubmatch(body, -1) {
		out["sink"] = append(out["sink"], m[1])
	}
	for _, m := range logsRe.FindAllStringSubmatch(body, -1) {
		out["logs"] = append(out["logs"], m[1])
	}
	return out
}

// checkEndpoints fails unless body names each of kinds and every
// endpoint in it is on host, with port httpPort for URLs.
func checkEndpoints(t *testing.T, body, host string, httpPort int, kinds ...string) {
	t.Helper()
	eps := endpointsIn(body)
	for _, k := range kinds {
		if len(eps[k]) == 0 {
			t.Errorf("script names no %s endpoint:\n%s", k, body)
		}
	}
	for what, list := range eps {
		for _, hp := range list {
			h, p, err := net.SplitHostPort(hp)
			if err != nil {
				t.Errorf("%s endpoint %q: %v", what, hp, err)
				continue
			}
			if h != host {
				t.Errorf("%s endpoint %s: got host %s, want %s", what, hp, h, host)
			}
			wantPort := strconv.Itoa(httpPort)
			switch what {
			case "sink":
				wantPort = "8091"
			case "logs":
				wantPort = "8092"
			}
			if p != wantPort {
				t.Errorf("%s endpoint %s: got port %s, want %s", what, hp, p, wantPort)
			}
		}
	}
}

// TestScriptsNameTheLocalAddress checks that the chain URL of /boot.ipxe
// and the kernel, initrd, config, event sink and log receiver of /ipxe
// name the address the request arrived on when advertise is not pinned
// (a server on two LANs must send each node to its own LAN's address,
// issue 18), and advertise when it is pinned. The same flow answers on
// 127.0.0.1, 127.0.0.2 and ::1.
func TestScriptsNameTheLocalAddress(t *testing.T) {
	for _, pinned := range []bool{false, true} {
		f := urlFlow(t, pinned)
		for _, addr := range []string{"127.0.0.1:0", "127.0.0.2:0", "[::1]:0"} {
			name := addr + ", not pinned"
			if pinned {
				name = addr + ", pinned"
			}
			t.Run(name, func(t *testing.T) {
				base, ok := serveOn(t, f, addr)
				if !ok {
					t.Skipf("cannot listen on %s here", addr)
				}
				hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
				ap := netip.MustParseAddrPort(base[len("http://"):])
				host, port := ap.Addr().String(), int(ap.Port())
				if pinned {
					host, port = advertised, 8080
				}
				checkEndpoints(t, fetch(t, hc, base+"/boot.ipxe"), host, port, "chain")
				checkEndpoints(t, fetch(t, hc, base+scriptPath(macOnce)), host, port, "kernel", "initrd", "config", "sink", "logs")
			})
		}
	}
}

// TestScriptWithoutRequestNamesAdvertise checks that a script decided
// without a request (`tinderbox script`, the admin API's preview) names
// the configured base URL even when advertise is not pinned.
func TestScriptWithoutRequestNamesAdvertise(t *testing.T) {
	res, err := urlFlow(t, false).Script(t.Context(), macOnce, "", "x86_64", "", false)
	if err != nil {
		t.Fatal(err)
	}
	checkEndpoints(t, res.Body, advertised, 8080, "kernel", "initrd", "config", "sink", "logs")
}

// TestEndpointsFallBack checks the local addresses a script cannot name.
func TestEndpointsFallBack(t *testing.T) {
	f := urlFlow(t, false)
	for _, local := range []netip.AddrPort{
		{},
		netip.MustParseAddrPort("0.0.0.0:8080"),
		netip.MustParseAddrPort("[::]:8080"),
		netip.MustParseAddrPort("[fe80::1]:8080"),
	} {
		base, own := f.endpoints(local)
		if base != "http://"+advertised+":8080" || !slices.Equal(own, ownAt(netip.MustParseAddr(advertised))) {
			t.Errorf("local %v: got %s %q, want the configured base URL and arguments", local, base, own)
		}
	}
	base, own := f.endpoints(netip.MustParseAddrPort("[fd00::5]:8080"))
	if want := "http://[fd00::5]:8080"; base != want || !slices.Equal(own, ownAt(netip.MustParseAddr("fd00::5"))) {
		t.Errorf("local [fd00::5]:8080: got %s %q, want %s and its arguments", base, own, want)
	}
}
