package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/health"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
)

// readyz fetches GET /readyz and decodes it.
func readyz(t *testing.T, d *daemon) (int, api.Health) {
	t.Helper()
	resp, err := http.Get("http://" + d.httpAddr.String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h api.Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	return resp.StatusCode, h
}

// check is the named check of h.
func check(t *testing.T, h api.Health, name string) api.HealthCheck {
	t.Helper()
	for _, c := range h.Checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", name, h)
	return api.HealthCheck{}
}

// TestHealthOK: a daemon with its iPXE binaries, good profiles and a
// writable state.dir is ok on every probe, the status API and the status
// page; once stopping, its listeners are down.
func TestHealthOK(t *testing.T) {
	cfg := testConfig(t)
	writeIPXE(t, cfg)
	d, stop := startDaemon(t, cfg)
	base := "http://" + d.httpAddr.String()
	for _, p := range []string{"/livez", "/healthz"} {
		if code, body := get(t, http.DefaultClient, base+p); code != http.StatusOK || body != "ok\n" {
			t.Errorf("GET %s: got %d %q, want 200 ok", p, code, body)
		}
	}
	code, h := readyz(t, d)
	if code != http.StatusOK || h.Status != api.HealthOK || len(h.Checks) != 4 {
		t.Errorf("GET /readyz: got %d %+v, want 200 and four checks ok", code, h)
	}
	if c := check(t, h, "listeners"); !strings.Contains(c.Detail, "boot HTTP") || !strings.Contains(c.Detail, "admin HTTP") {
		t.Errorf("listeners: got %q, want the boot and admin servers named", c.Detail)
	}

	var st api.Status
	_, body := get(t, http.DefaultClient, "http://"+d.adminAddr.String()+"/api/v1/status")
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.Health == nil || st.Health.Status != api.HealthOK || len(st.Health.Checks) != 4 {
		t.Errorf("status health: got %+v, want ok with four checks", st.Health)
	}
	if _, page := get(t, http.DefaultClient, "http://"+d.adminAddr.String()+"/status"); !strings.Contains(page, `<span class="badge ok">ok</span> state`) {
		t.Errorf("status page lacks the state check:\n%s", page)
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if h := d.health.Report(); h.Status != api.HealthDown || check(t, h, "listeners").Detail != "stopping" {
		t.Errorf("after stop: got %+v, want listeners down, stopping", h)
	}
}

// TestHealthDegradedProfiles: serving the last good profiles because the
// files do not load is degraded: /healthz still answers 200 (machines
// boot), naming the problem, and /readyz says so per check.
func TestHealthDegradedProfiles(t *testing.T) {
	cfg := testConfig(t)
	writeIPXE(t, cfg)
	copyTree(t, filepath.Join("..", "..", "profiles"), cfg.Profiles.Dir)
	_, stop := startDaemon(t, cfg)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(cfg.Profiles.Dir, "defaults.yaml"), "install: sometimes\n")
	d, _ := startDaemon(t, cfg)
	code, body := get(t, http.DefaultClient, "http://"+d.httpAddr.String()+"/healthz")
	if code != http.StatusOK || !strings.HasPrefix(body, "degraded: profiles: the files do not load") || !strings.Contains(body, "4 machines") {
		t.Errorf("GET /healthz: got %d %q, want 200 degraded naming the profiles", code, body)
	}
	code, h := readyz(t, d)
	if code != http.StatusOK || h.Status != api.HealthDegraded || check(t, h, "profiles").Status != api.HealthDegraded || check(t, h, "state").Status != api.HealthOK {
		t.Errorf("GET /readyz: got %d %+v, want 200, degraded by profiles alone", code, h)
	}
}

// TestHealthStateDisk: a state.dir that refuses writes, and one whose
// writes never return (the probe's file is a FIFO nobody reads: the open
// blocks as a frozen disk's write does), make the daemon down: /healthz
// and /readyz answer 503 naming the state check, while /livez stays 200
// (a restart would not mend the disk).
func TestHealthStateDisk(t *testing.T) {
	tests := []struct {
		name  string
		fault func(t *testing.T, path string)
		want  string
	}{
		{name: "refused", fault: func(t *testing.T, path string) {
			// A directory where the probe writes its file: every write
			// fails, as on a full or read-only disk.
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, want: "is a directory"},
		{name: "frozen", fault: func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			t.Cleanup(func() {
				// A reader lets the stuck open through, so the probe's
				// goroutine ends.
				if f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
					time.Sleep(100 * time.Millisecond)
					f.Close()
				}
			})
		}, want: "the disk does not answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			writeIPXE(t, cfg)
			if err := os.MkdirAll(cfg.State.Dir, 0o700); err != nil {
				t.Fatal(err)
			}
			tt.fault(t, filepath.Join(cfg.State.Dir, health.ProbeFile))
			d, _ := startDaemon(t, cfg)
			base := "http://" + d.httpAddr.String()
			var code int
			var body string
			// Until the probe fails (at once) or passes its deadline.
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if code, body = get(t, http.DefaultClient, base+"/healthz"); code != http.StatusOK || time.Now().After(deadline) {
					break
				}
			}
			if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "down: state: state.dir: ") || !strings.Contains(body, tt.want) {
				t.Errorf("GET /healthz: got %d %q, want 503 down naming state.dir and %q", code, body, tt.want)
			}
			if code, h := readyz(t, d); code != http.StatusServiceUnavailable || h.Status != api.HealthDown || check(t, h, "state").Status != api.HealthDown {
				t.Errorf("GET /readyz: got %d %+v, want 503 with state down", code, h)
			}
			if code, _ := get(t, http.DefaultClient, base+"/livez"); code != http.StatusOK {
				t.Errorf("GET /livez: got %d, want 200", code)
			}
		})
	}
}
