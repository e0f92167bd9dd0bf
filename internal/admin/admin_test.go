package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/tinderbox-boot/tinderbox/internal/bootflow"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

const (
	macBooted  = "52:54:00:00:00:01" // has a profile and a state record
	macProfile = "52:54:00:00:00:02" // has a profile, never booted
	macFound   = "52:54:00:00:00:03" // booted, no profile (discovered)
)

type fakeProfiles map[machine.MAC]profiles.Profile

func (p fakeProfiles) Machine(mac machine.MAC) (profiles.Profile, bool) {
	pr, ok := p[mac]
	return pr, ok
}

func (p fakeProfiles) Unknown() machine.Unknown { return machine.UnknownMaintenance }

func (p fakeProfiles) MaintenanceArgs() []string { return nil }

func (p fakeProfiles) Maintenance() profiles.Talos {
	return profiles.Talos{Version: "v1.12.7", SchematicID: "s"}
}

func (p fakeProfiles) Rendered(_ context.Context, mac machine.MAC) ([]byte, string, error) {
	if _, ok := p[mac]; !ok {
		return nil, "", errors.New("no profile")
	}
	return []byte("machine:\n  network:\n    hostname: " + p[mac].Hostname + "\n"), "5e7", nil
}

func (p fakeProfiles) Images() []profiles.Image { return nil }

func (p fakeProfiles) Machines() []profiles.Profile {
	var out []profiles.Profile
	for _, pr := range p {
		out = append(out, pr)
	}
	return out
}

type cmdlines struct{}

func (cmdlines) Cmdline(context.Context, string, string, machine.Arch) (string, error) {
	return "talos.platform=metal", nil
}

func newServer(t *testing.T, token string) (*httptest.Server, *state.Store) {
	t.Helper()
	store, err := state.Open(t.TempDir(), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	fake := fakeProfiles{
		mustMAC(macBooted):  {MAC: mustMAC(macBooted), Hostname: "cp-01", Install: machine.InstallOnce, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: "s"}},
		mustMAC(macProfile): {MAC: mustMAC(macProfile), Hostname: "cp-02", Install: machine.InstallOnce, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: "s", Arch: machine.ArchAMD64}},
	}
	for _, mac := range []string{macBooted, macFound} {
		_, known := fake.Machine(mustMAC(mac))
		if _, err := store.Update(mustMAC(mac), func(m *state.Machine, _ bool) error {
			m.State = state.Reconcile(m.State, known, machine.InstallOnce)
			m.Arch, m.IP = "amd64", "192.0.2.50"
			m.Events = append(m.Events, store.Event(machine.EventScript, "netboot", 0))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	flow := bootflow.New(bootflow.Options{BaseURL: "http://192.0.2.1:8080", LocalBoot: "exit", Store: store, Profiles: fake, Cmdlines: cmdlines{}, Logger: log})
	r := chi.NewRouter()
	New(Options{Token: token, Store: store, Profiles: fake, Scripts: flow, Logger: log}).Mount(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv, store
}

func do(t *testing.T, srv *httptest.Server, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAuth(t *testing.T) {
	srv, _ := newServer(t, "s3cret")
	tests := []struct {
		name, token string
		want        int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong", "guess", http.StatusUnauthorized},
		{"prefix", "s3cre", http.StatusUnauthorized},
		{"right", "s3cret", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, srv, http.MethodGet, "/api/v1/machines", tt.token)
			if code != tt.want {
				t.Errorf("got %d %s, want %d", code, body, tt.want)
			}
			if code == http.StatusUnauthorized && !strings.Contains(body, `"error"`) {
				t.Errorf("401 body is not a JSON error: %s", body)
			}
		})
	}
	t.Run("no token configured", func(t *testing.T) {
		open, _ := newServer(t, "")
		if code, _ := do(t, open, http.MethodGet, "/api/v1/machines", ""); code != http.StatusOK {
			t.Errorf("got %d, want 200", code)
		}
	})
}

func TestListAndShow(t *testing.T) {
	srv, _ := newServer(t, "")
	code, body := do(t, srv, http.MethodGet, "/api/v1/machines", "")
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	type row struct {
		mac, hostname, state string
		profile              bool
	}
	want := []row{
		{macBooted, "cp-01", "pending", true},
		{macProfile, "cp-02", "pending", true},
		{macFound, "", "discovered", false},
	}
	if len(list) != len(want) {
		t.Fatalf("list: got %d machines, want %d: %s", len(list), len(want), body)
	}
	for i, w := range want {
		g := list[i]
		if g["mac"] != w.mac || g["hostname"] != w.hostname || g["state"] != w.state || g["profile"] != w.profile {
			t.Errorf("row %d: got %v, want %+v", i, g, w)
		}
		// docs/api.md, "Shapes": every listed key is present.
		for _, k := range []string{"mac", "hostname", "state", "arch", "uuid", "ip", "firstSeen", "lastSeen", "profile"} {
			if _, ok := g[k]; !ok {
				t.Errorf("row %d lacks %q", i, k)
			}
		}
	}
	if list[1]["firstSeen"] != nil {
		t.Errorf("a machine that never booted has firstSeen %v, want null", list[1]["firstSeen"])
	}

	code, body = do(t, srv, http.MethodGet, "/api/v1/machines/52-54-00-00-00-01", "")
	if code != http.StatusOK || !strings.Contains(body, `"kind": "script"`) || !strings.Contains(body, `"lastStep": "Script"`) {
		t.Errorf("show: got %d %s, want the machine with its events", code, body)
	}
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/api/v1/machines/52-54-00-00-00-99", http.StatusNotFound},
		{"/api/v1/machines/not-a-mac", http.StatusBadRequest},
		{"/api/v1/nothing", http.StatusNotFound},
	} {
		if code, body := do(t, srv, http.MethodGet, tt.path, ""); code != tt.want || !strings.Contains(body, `"error"`) {
			t.Errorf("GET %s: got %d %s, want %d with a JSON error", tt.path, code, body, tt.want)
		}
	}
}

func TestReinstallAndForget(t *testing.T) {
	srv, store := newServer(t, "")
	if _, err := store.Update(mustMAC(macBooted), func(m *state.Machine, _ bool) error {
		m.ConfigServed()
		m.ScriptServed()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	before, _, _ := store.Get(mustMAC(macBooted))
	if before.State != machine.Installed {
		t.Fatalf("setup: state %q, want installed", before.State)
	}
	code, body := do(t, srv, http.MethodPost, "/api/v1/machines/"+macBooted+"/reinstall", "")
	if code != http.StatusOK || !strings.Contains(body, `"state": "pending"`) {
		t.Fatalf("reinstall: got %d %s", code, body)
	}
	after, _, _ := store.Get(mustMAC(macBooted))
	if after.State != machine.Pending || after.Generation != before.Generation+1 || after.Events[len(after.Events)-1].Kind != machine.EventReinstall {
		t.Errorf("after reinstall: got %+v", after)
	}
	if code, _ := do(t, srv, http.MethodPost, "/api/v1/machines/52:54:00:00:00:99/reinstall", ""); code != http.StatusNotFound {
		t.Errorf("reinstall of an unknown machine: got %d, want 404", code)
	}
	// A machine that booted but has no profile cannot install: the
	// reinstall is refused with the reason, and its record is untouched.
	found, _, _ := store.Get(mustMAC(macFound))
	code, body = do(t, srv, http.MethodPost, "/api/v1/machines/"+macFound+"/reinstall", "")
	if code != http.StatusConflict || !strings.Contains(body, "it has no profile") || !strings.Contains(body, "machines/52-54-00-00-00-03.yaml") {
		t.Errorf("reinstall of a machine without a profile: got %d %s, want 409 with the reason", code, body)
	}
	if now, _, _ := store.Get(mustMAC(macFound)); now.Generation != found.Generation || len(now.Events) != len(found.Events) {
		t.Errorf("a refused reinstall changed the record: before %+v, after %+v", found, now)
	}

	if code, _ := do(t, srv, http.MethodDelete, "/api/v1/machines/"+macFound, ""); code != http.StatusNoContent {
		t.Errorf("forget: got %d, want 204", code)
	}
	if _, ok, _ := store.Get(mustMAC(macFound)); ok {
		t.Error("forgotten machine still recorded")
	}
	if code, _ := do(t, srv, http.MethodDelete, "/api/v1/machines/"+macFound, ""); code != http.StatusNotFound {
		t.Errorf("forget twice: got %d, want 404", code)
	}
}

func TestConfigAndScript(t *testing.T) {
	srv, store := newServer(t, "")
	code, body := do(t, srv, http.MethodGet, "/api/v1/machines/"+macBooted+"/config", "")
	if code != http.StatusOK || !strings.Contains(body, "hostname: cp-01") {
		t.Errorf("config: got %d %s", code, body)
	}
	if code, _ := do(t, srv, http.MethodGet, "/api/v1/machines/"+macFound+"/config", ""); code != http.StatusNotFound {
		t.Errorf("config of a machine with no profile: got %d, want 404", code)
	}
	before, _, _ := store.Get(mustMAC(macBooted))
	code, body = do(t, srv, http.MethodGet, "/api/v1/machines/"+macBooted+"/script?arch=x86_64", "")
	if code != http.StatusOK || !strings.Contains(body, "talos.config=http://192.0.2.1:8080/config/52-54-00-00-00-01?token=") {
		t.Errorf("script: got %d %s", code, body)
	}
	after, _, _ := store.Get(mustMAC(macBooted))
	if len(after.Events) != len(before.Events) {
		t.Error("previewing a script recorded an event")
	}
}

func mustMAC(s string) machine.MAC { return machine.MustParseMAC(s) }
