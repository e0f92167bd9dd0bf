package bootflow

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tinderbox-boot/tinderbox/internal/boot"
	"github.com/tinderbox-boot/tinderbox/internal/evidence"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

var (
	macOnce    = machine.MustParseMAC("52:54:00:00:00:01")
	macAlways  = machine.MustParseMAC("52:54:00:00:00:02")
	macNever   = machine.MustParseMAC("52:54:00:00:00:03")
	macArm     = machine.MustParseMAC("52:54:00:00:00:04")
	macUnknown = machine.MustParseMAC("52:54:00:00:00:99")
)

const (
	cmdline = "talos.platform=metal console=tty0"
)

var schematic = strings.Repeat("ab", 32)

type fakeProfiles struct {
	mu       sync.Mutex
	machines map[machine.MAC]profiles.Profile
	policy   machine.Unknown
	// maintArgs, when not nil, replaces the maintenance boot's kernel
	// arguments.
	maintArgs []string
}

func (p *fakeProfiles) Machine(mac machine.MAC) (profiles.Profile, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.machines[mac]
	return pr, ok
}

func (p *fakeProfiles) Unknown() machine.Unknown {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.policy
}

// MaintenanceArgs are as the example's defaults.yaml has them, unless
// maintArgs replaces them.
func (p *fakeProfiles) MaintenanceArgs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.maintArgs != nil {
		return p.maintArgs
	}
	return []string{"talos.dashboard.disabled=1"}
}

func (p *fakeProfiles) Maintenance() profiles.Talos {
	// As the shipped example's defaults.yaml: talos.arch amd64.
	return profiles.Talos{Version: "v1.12.7", SchematicID: schematic, Arch: machine.ArchAMD64}
}

// fakeSet is the profile set hash fakeProfiles renders from.
const fakeSet = "5e7"

func (p *fakeProfiles) Rendered(_ context.Context, mac machine.MAC) ([]byte, string, error) {
	if _, ok := p.Machine(mac); !ok {
		return nil, "", errors.New("no profile for " + mac.String())
	}
	return []byte("version: v1alpha1\nmachine:\n  type: controlplane # " + mac.String() + "\n"), fakeSet, nil
}

type fakeCmdlines struct{ err error }

func (c fakeCmdlines) Cmdline(_ context.Context, id, version string, arch machine.Arch) (string, error) {
	if c.err != nil {
		return "", c.err
	}
	return cmdline, nil
}

type env struct {
	flow     *Flow
	store    state.Backend
	profiles *fakeProfiles
	srv      *httptest.Server
	reg      *prometheus.Registry
	neigh    *fakeNeighbours
	logs     *syncBuffer
	// lastDenial is the newest refusal event waitEvent has seen.
	lastDenial time.Time
}

// fakeNeighbours is a neighbour table the test writes: each machine asks
// from a loopback address of its own (hostOf), which the table binds to
// its MAC, as the kernel's table binds a LAN client's address.
type fakeNeighbours struct {
	mu sync.Mutex
	m  map[netip.Addr]machine.MAC
}

func (n *fakeNeighbours) Lookup(ip netip.Addr) (machine.MAC, bool, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	mac, ok := n.m[ip]
	return mac, ok, nil
}

func (n *fakeNeighbours) set(ip netip.Addr, mac machine.MAC) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.m[ip] = mac
}

// hostOf is the loopback address mac's requests come from in tests.
func hostOf(mac machine.MAC) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 1, mac[4], mac[5]})
}

// testUUID is the SMBIOS UUID test machines report, in upper case as some
// firmware prints it; it is stored in canonical lower case.
const testUUID = "8A3B5C1E-0F2D-4E6A-9B7C-1D2E3F4A5B6C"

// nobody is a loopback address the neighbour table holds nothing for.
var nobody = netip.MustParseAddr("127.0.0.1")

func newEnv(t *testing.T, localBoot string, policy machine.Unknown, cmdErr error) *env {
	t.Helper()
	return newEnvBinding(t, localBoot, policy, cmdErr, true)
}

// newEnvBinding is newEnv with binding on or off.
func newEnvBinding(t *testing.T, localBoot string, policy machine.Unknown, cmdErr error, binding bool) *env {
	t.Helper()
	return newEnvStore(t, localBoot, policy, cmdErr, binding, t.TempDir(), state.Options{})
}

// newEnvStore is newEnvBinding with the state store opened under dir
// with opts.
func newEnvStore(t *testing.T, localBoot string, policy machine.Unknown, cmdErr error, binding bool, dir string, opts state.Options) *env {
	t.Helper()
	store, err := state.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newEnvOn(t, localBoot, policy, cmdErr, binding, store)
}

// newEnvOn is newEnvBinding on store, which the caller closes.
func newEnvOn(t *testing.T, localBoot string, policy machine.Unknown, cmdErr error, binding bool, store state.Backend) *env {
	t.Helper()
	profiles := &fakeProfiles{policy: policy, machines: map[machine.MAC]profiles.Profile{
		macOnce:   {Hostname: "cp-01", Install: machine.InstallOnce, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}},
		macAlways: {Hostname: "w-01", Install: machine.InstallAlways, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}},
		macNever:  {Hostname: "old", Install: machine.InstallNever, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}},
		macArm:    {Hostname: "pi", Install: machine.InstallOnce, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic, Arch: machine.ArchARM64}},
	}}
	r := chi.NewRouter()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	neigh := &fakeNeighbours{m: map[netip.Addr]machine.MAC{}}
	logs := &syncBuffer{}
	ev, err := evidence.New(evidence.Options{Enabled: binding, Neighbours: neigh})
	if err != nil {
		t.Fatal(err)
	}
	f := New(Options{
		BaseURL: srv.URL, LocalBoot: localBoot, Store: store, Profiles: profiles, Evidence: ev,
		Cmdlines: fakeCmdlines{err: cmdErr}, Logger: slog.New(slog.NewTextHandler(logs, nil)), Registerer: reg,
	})
	f.Mount(r)
	return &env{flow: f, store: store, profiles: profiles, srv: srv, reg: reg, neigh: neigh, logs: logs}
}

// get requests path as the machine it names (?mac= or /config/MAC) would:
// from that machine's own address. A path naming no MAC is requested from
// an address nothing is bound to.
func (e *env) get(t *testing.T, path string) (int, string) {
	t.Helper()
	u, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	raw := u.Query().Get("mac")
	if rest, ok := strings.CutPrefix(u.Path, "/config/"); ok {
		raw = rest
	}
	src := nobody
	if mac, err := machine.ParseMAC(raw); err == nil {
		src = hostOf(mac)
		e.neigh.set(src, mac)
	}
	return e.getFrom(t, src, path)
}

// getFrom requests path from the loopback address src.
func (e *env) getFrom(t *testing.T, src netip.Addr, path string) (int, string) {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true}}
	resp, err := client.Get(e.srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (e *env) script(t *testing.T, mac, arch string) (int, string) {
	t.Helper()
	return e.get(t, "/ipxe?"+url.Values{"mac": {mac}, "uuid": {testUUID}, "arch": {arch}}.Encode())
}

// machine returns mac's record once every queued record is written.
func (e *env) machine(t *testing.T, mac machine.MAC) state.Machine {
	t.Helper()
	if err := e.flow.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	m, ok, err := e.store.Get(mac)
	if err != nil || !ok {
		t.Fatalf("machine %s: ok=%v err=%v", mac, ok, err)
	}
	return m
}

var configURLRe = regexp.MustCompile(`talos\.config=(\S+)`)

// configPath extracts the talos.config URL's path and query from a script.
func configPath(t *testing.T, e *env, script string) string {
	t.Helper()
	m := configURLRe.FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("script has no talos.config:\n%s", script)
	}
	return strings.TrimPrefix(m[1], e.srv.URL)
}

// TestInstallOnceFlow walks the install-once cycle (docs/protocol.md,
// "Machine states") over real HTTP: netboot, config (installing), next
// boot told to boot disk (installed), config refused, reinstall rotates
// the token, netboot again.
func TestInstallOnceFlow(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)

	code, s := e.script(t, macOnce.Dashed(), "x86_64")
	if code != http.StatusOK || !strings.Contains(s, "/assets/"+schematic+"/v1.12.7/kernel-amd64 initrd=initramfs-amd64.xz talos.config=") || !strings.Contains(s, "?token=") || !strings.Contains(s, " "+cmdline+" || goto failed") {
		t.Fatalf("first boot: got %d\n%s", code, s)
	}
	if st := e.machine(t, macOnce).State; st != machine.Pending {
		t.Errorf("after first script: state %q, want pending", st)
	}
	cfg := configPath(t, e, s)

	code, body := e.get(t, cfg)
	if code != http.StatusOK || !strings.Contains(body, "# "+macOnce.String()) {
		t.Fatalf("config: got %d %q", code, body)
	}
	want, _, _ := e.profiles.Rendered(t.Context(), macOnce)
	if body != string(want) {
		t.Errorf("config body differs from Render:\n%s\nwant\n%s", body, want)
	}
	// The served record names the profile set the config came from.
	if err := e.flow.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if sv, ok, err := e.store.Served(macOnce); err != nil || !ok || sv.ProfileSet != fakeSet {
		t.Errorf("served record: got %+v, %v, %v; want one of profile set %s", sv, ok, err, fakeSet)
	}
	m := e.machine(t, macOnce)
	if m.State != machine.Installing || m.IP != hostOf(macOnce).String() || m.UUID != strings.ToLower(testUUID) || m.Arch != "amd64" {
		t.Errorf("after config: got %+v", m)
	}

	code, s = e.script(t, macOnce.Dashed(), "x86_64")
	if code != http.StatusOK || !strings.Contains(s, "\nexit 1\n") {
		t.Fatalf("boot after install: got %d\n%s", code, s)
	}
	if st := e.machine(t, macOnce).State; st != machine.Installed {
		t.Errorf("after second script: state %q, want installed", st)
	}
	// The install completed: its token is spent, and even the machine's
	// current token gets no config outside the install window.
	if code, _ := e.get(t, cfg); code != http.StatusForbidden {
		t.Errorf("spent token once installed: got %d, want 403", code)
	}
	e.waitEvent(t, macOnce, "config: wrong token")
	current := strings.TrimPrefix(e.flow.ConfigURL(e.machine(t, macOnce)), e.srv.URL)
	if current == cfg {
		t.Error("token not rotated when the install completed")
	}
	if code, _ := e.get(t, current); code != http.StatusForbidden {
		t.Errorf("current token once installed: got %d, want 403", code)
	}
	e.waitEvent(t, macOnce, "config: outside the install window: machine is installed")

	if _, err := e.store.Update(macOnce, func(m *state.Machine, _ bool) error { m.Reinstall(); return nil }); err != nil {
		t.Fatal(err)
	}
	if code, _ := e.get(t, current); code != http.StatusForbidden {
		t.Errorf("old token after reinstall: got %d, want 403", code)
	}
	e.waitEvent(t, macOnce, "config: wrong token")
	code, s = e.script(t, macOnce.Dashed(), "x86_64")
	if code != http.StatusOK || !strings.Contains(s, "talos.config=") {
		t.Fatalf("boot after reinstall: got %d\n%s", code, s)
	}
	newCfg := configPath(t, e, s)
	if newCfg == cfg || newCfg == current {
		t.Error("token not rotated by reinstall")
	}
	if code, _ := e.get(t, newCfg); code != http.StatusOK {
		t.Errorf("new token: got %d, want 200", code)
	}

	var kinds []string
	for _, ev := range e.machine(t, macOnce).Events {
		kinds = append(kinds, string(ev.Kind)+":"+ev.Detail)
	}
	wantKinds := "script:netboot config: script:local local_boot:exit config_denied:config: wrong token " +
		"config_denied:config: outside the install window: machine is installed (re-arm it with `tinderbox machines reinstall 52:54:00:00:00:01`) " +
		"config_denied:config: wrong token script:netboot config:"
	if got := strings.Join(kinds, " "); got != wantKinds {
		t.Errorf("events:\n got %s\nwant %s", got, wantKinds)
	}
	if got := testutil.ToFloat64(e.flow.steps.WithLabelValues("config", "forbidden")); got != 3 {
		t.Errorf("config forbidden count: got %v, want 3", got)
	}
}

func TestScriptSelection(t *testing.T) {
	tests := []struct {
		name      string
		localBoot string
		policy    machine.Unknown
		mac, arch string
		cmdErr    error
		wantCode  int
		wantIn    []string
		wantNotIn []string
		wantState machine.State // "" = no record
	}{
		{name: "always netboots with config", localBoot: "exit", mac: macAlways.Dashed(), arch: "x86_64", wantCode: 200, wantIn: []string{"talos.config="}, wantState: machine.Netboot},
		{name: "never boots disk by exit", localBoot: "exit", mac: macNever.Dashed(), arch: "x86_64", wantCode: 200, wantIn: []string{"\nexit 1\n"}, wantNotIn: []string{"kernel"}, wantState: machine.Local},
		{name: "never boots disk by sanboot", localBoot: "sanboot", mac: macNever.Dashed(), arch: "x86_64", wantCode: 200, wantIn: []string{"sanboot --no-describe --drive 0x80"}, wantState: machine.Local},
		{name: "never boots disk by 404", localBoot: "notfound", mac: macNever.Dashed(), arch: "x86_64", wantCode: 404, wantState: machine.Local},
		{name: "BIOS iPXE says i386", localBoot: "exit", mac: macOnce.Dashed(), arch: "i386", wantCode: 200, wantIn: []string{"kernel-amd64", "initramfs-amd64.xz"}, wantState: machine.Pending},
		{name: "profile arch, no firmware arch", localBoot: "exit", mac: macArm.Dashed(), arch: "", wantCode: 200, wantIn: []string{"kernel-arm64", "initrd=initramfs-arm64.xz"}, wantState: machine.Pending},
		{name: "profile arch agrees with the firmware", localBoot: "exit", mac: macArm.Dashed(), arch: "arm64", wantCode: 200, wantIn: []string{"kernel-arm64"}, wantState: machine.Pending},
		{name: "profile arch contradicts the firmware", localBoot: "exit", mac: macArm.Dashed(), arch: "x86_64", wantCode: 409, wantIn: []string{"talos.arch arm64", "runs amd64 iPXE"}, wantNotIn: []string{"kernel-"}, wantState: machine.Pending},
		{name: "profile arch contradicts BIOS iPXE", localBoot: "exit", mac: macArm.Dashed(), arch: "i386", wantCode: 409, wantIn: []string{"talos.arch arm64"}, wantState: machine.Pending},
		{name: "arm64 iPXE", localBoot: "exit", mac: macOnce.Dashed(), arch: "arm64", wantCode: 200, wantIn: []string{"kernel-arm64"}, wantState: machine.Pending},
		{name: "unsupported arch", localBoot: "exit", mac: macOnce.Dashed(), arch: "arm32", wantCode: 400, wantIn: []string{"arch \"arm32\""}, wantState: machine.Pending},
		{name: "unknown maintenance", localBoot: "exit", policy: machine.UnknownMaintenance, mac: macUnknown.Dashed(), arch: "x86_64", wantCode: 200, wantIn: []string{"maintenance-mode", "kernel-amd64", " talos.dashboard.disabled=1"}, wantNotIn: []string{"talos.config"}, wantState: machine.Discovered},
		// defaults.yaml says amd64; the firmware's arch wins for a machine without a profile.
		{name: "unknown arm64 maintenance", localBoot: "exit", policy: machine.UnknownMaintenance, mac: macUnknown.Dashed(), arch: "arm64", wantCode: 200, wantIn: []string{"kernel-arm64", "initrd=initramfs-arm64.xz"}, wantNotIn: []string{"amd64"}, wantState: machine.Discovered},
		{name: "unknown aarch64 maintenance", localBoot: "exit", policy: machine.UnknownMaintenance, mac: macUnknown.Dashed(), arch: "aarch64", wantCode: 200, wantIn: []string{"kernel-arm64"}, wantState: machine.Discovered},
		{name: "unknown BIOS maintenance", localBoot: "exit", policy: machine.UnknownMaintenance, mac: macUnknown.Dashed(), arch: "i386", wantCode: 200, wantIn: []string{"kernel-amd64"}, wantState: machine.Discovered},
		{name: "unknown, no firmware arch: defaults' arch", localBoot: "exit", policy: machine.UnknownMaintenance, mac: macUnknown.Dashed(), arch: "", wantCode: 200, wantIn: []string{"kernel-amd64"}, wantState: machine.Discovered},
		{name: "unknown local", localBoot: "exit", policy: machine.UnknownLocal, mac: macUnknown.Dashed(), arch: "x86_64", wantCode: 200, wantIn: []string{"\nexit 1\n"}, wantState: machine.Discovered},
		{name: "unknown ignored", localBoot: "exit", policy: machine.UnknownIgnore, mac: macUnknown.Dashed(), arch: "x86_64", wantCode: 404, wantIn: []string{"ignored"}},
		{name: "factory down", localBoot: "exit", mac: macOnce.Dashed(), arch: "x86_64", cmdErr: errors.New("factory: connection refused"), wantCode: 502, wantIn: []string{"connection refused"}, wantState: machine.Pending},
		{name: "bad MAC", localBoot: "exit", mac: "nonsense", arch: "x86_64", wantCode: 400, wantIn: []string{"not a MAC address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy := tt.policy
			if policy == "" {
				policy = machine.UnknownMaintenance
			}
			e := newEnv(t, tt.localBoot, policy, tt.cmdErr)
			code, body := e.script(t, tt.mac, tt.arch)
			if code != tt.wantCode {
				t.Errorf("status: got %d, want %d\n%s", code, tt.wantCode, body)
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q:\n%s", w, body)
				}
			}
			for _, w := range tt.wantNotIn {
				if strings.Contains(body, w) {
					t.Errorf("body has %q:\n%s", w, body)
				}
			}
			if tt.mac == "nonsense" {
				return
			}
			m, ok, err := e.store.Get(machine.MustParseMAC(tt.mac))
			if err != nil {
				t.Fatal(err)
			}
			if !ok && tt.wantState != "" || ok && m.State != tt.wantState {
				t.Errorf("state: got %q (recorded %v), want %q", m.State, ok, tt.wantState)
			}
		})
	}
}

func TestConfigRefusals(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	if code, _ := e.get(t, "/config/52-54-00-00-00-01?token=x"); code != http.StatusForbidden {
		t.Errorf("never booted: got %d, want 403", code)
	}
	_, s := e.script(t, macOnce.Dashed(), "x86_64")
	good := configPath(t, e, s)
	path, _, _ := strings.Cut(good, "?")
	tests := []struct {
		name, path string
		want       int
	}{
		{"no token", path, http.StatusForbidden},
		{"empty token", path + "?token=", http.StatusForbidden},
		{"wrong token", path + "?token=0123456789abcdef0123456789abcdef", http.StatusForbidden},
		{"other machine's path", "/config/52-54-00-00-00-02" + good[len(path):], http.StatusForbidden},
		{"bad MAC", "/config/..%2f..%2fetc?token=x", http.StatusForbidden},
		{"long MAC", "/config/" + strings.Repeat("a", 5000) + "?token=x", http.StatusForbidden},
		{"long token", path + "?token=" + strings.Repeat("a", 5000), http.StatusForbidden},
		{"right token", good, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.get(t, tt.path)
			if code != tt.want {
				t.Errorf("GET %s: got %d %q, want %d", clip(tt.path), code, body, tt.want)
			}
			if code != http.StatusOK && body != refusedConfig {
				t.Errorf("GET %s: refusal body %q, want the one uniform %q", clip(tt.path), body, refusedConfig)
			}
		})
	}
	// A discovered (unknown) machine never gets a config, even with its token.
	e.script(t, macUnknown.Dashed(), "x86_64")
	m := e.machine(t, macUnknown)
	if code, _ := e.get(t, "/config/52-54-00-00-00-99?token="+e.store.Token(m)); code != http.StatusForbidden {
		t.Errorf("discovered machine with its token: got %d, want 403", code)
	}
}

func TestGenericScriptAndMetrics(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	code, body := e.get(t, "/boot.ipxe")
	if code != http.StatusOK || !strings.Contains(body, "chain --replace "+e.srv.URL+"/ipxe?mac=${${nic}/mac:hexhyp}&uuid=${uuid}&arch=${buildarch}") {
		t.Errorf("/boot.ipxe: got %d\n%s", code, body)
	}
	e.script(t, macOnce.Dashed(), "x86_64")
	e.script(t, macNever.Dashed(), "x86_64")
	e.script(t, macUnknown.Dashed(), "x86_64")
	if got := testutil.ToFloat64(e.flow.steps.WithLabelValues("script", "netboot")); got != 1 {
		t.Errorf("netboot scripts: got %v, want 1", got)
	}
	wantMachines := `
# HELP tinderbox_machines Machines known to tinderbox, by state.
# TYPE tinderbox_machines gauge
tinderbox_machines{state="discovered"} 1
tinderbox_machines{state="failed"} 0
tinderbox_machines{state="installed"} 0
tinderbox_machines{state="installing"} 0
tinderbox_machines{state="local"} 1
tinderbox_machines{state="netboot"} 0
tinderbox_machines{state="pending"} 1
tinderbox_machines{state="ready"} 0
`
	if err := testutil.GatherAndCompare(e.reg, strings.NewReader(wantMachines), "tinderbox_machines"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(e.reg); err != nil || len(problems) > 0 {
		t.Errorf("metrics lint: %v %v", problems, err)
	}
	if mac, ok := e.flow.MACOf(hostOf(macUnknown).String()); !ok || mac != macUnknown {
		t.Errorf("MACOf(%s): got %q %v, want %s", hostOf(macUnknown), mac, ok, macUnknown)
	}
}

// TestScriptWithoutRecording is `tinderbox script MAC`: it shows what the
// machine would get now and changes nothing.
func TestScriptWithoutRecording(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	res, err := e.flow.Script(t.Context(), macOnce, "", "x86_64", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Action != boot.Netboot || !strings.Contains(res.Body, "talos.config="+e.srv.URL+"/config/52-54-00-00-00-01?token=") {
		t.Errorf("got %+v", res)
	}
	if _, ok, _ := e.store.Get(macOnce); ok {
		t.Error("Script with record=false created a state record")
	}
}

// waitEvent waits for mac's newest refusal event to read detail: refusals
// are recorded in the background, after the answer.
func (e *env) waitEvent(t *testing.T, mac machine.MAC, detail string) {
	t.Helper()
	for range 500 {
		m, _, err := e.store.Get(mac)
		if err != nil {
			t.Fatal(err)
		}
		if ev, ok := m.LastEvent(machine.EventDenied); ok && strings.HasPrefix(ev.Detail, detail) && ev.Time.After(e.lastDenial) {
			e.lastDenial = ev.Time
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: no refusal event %q recorded", mac, detail)
}

// syncBuffer is a log sink tests read while handlers write to it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
