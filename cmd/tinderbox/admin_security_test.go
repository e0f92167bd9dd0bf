package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// adminCall sends one request to the daemon's admin listener with the
// given Host (none: the listener's address) and headers.
func adminCall(t *testing.T, d *daemon, method, path, host string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, "http://"+d.adminAddr.String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAdminListenerHardening: the daemon's default admin listener
// (loopback, no token) over a real socket. A Host that does not name it
// (DNS rebinding) gets 421 on the API, the pages and the static files;
// admin.hosts adds a name. State changes a browser marks as cross-site
// get 403 and change nothing, while the listener's own pages, the CLI
// (pkg/client) and a same-origin browser call go through.
func TestAdminListenerHardening(t *testing.T) {
	cfg := exampleConfig(t)
	cfg.Admin.Hosts = []string{"tinderbox.example"}
	d, _ := startDaemon(t, cfg)
	self := "http://" + d.adminAddr.String()
	const mac = "1c:69:7a:00:00:11" // cp-01 in the example profiles

	for _, path := range []string{"/api/v1/machines/" + mac + "/config", "/", "/machines/" + mac, "/static/app.js", "/login"} {
		for _, host := range []string{"evil.example", "evil.example:" + portOf(d.adminAddr.String())} {
			if code, body := adminCall(t, d, http.MethodGet, path, host, nil); code != http.StatusMisdirectedRequest || !strings.Contains(body, "admin.hosts") {
				t.Errorf("GET %s with Host %s: got %d %.80s, want 421", path, host, code, body)
			}
		}
	}
	for _, host := range []string{"", "localhost:" + portOf(d.adminAddr.String()), "tinderbox.example"} {
		if code, _ := adminCall(t, d, http.MethodGet, "/api/v1/machines/"+mac+"/config", host, nil); code != http.StatusOK {
			t.Errorf("GET config with Host %q: got %d, want 200", host, code)
		}
		if code, _ := adminCall(t, d, http.MethodGet, "/", host, nil); code != http.StatusOK {
			t.Errorf("GET / with Host %q: got %d, want 200", host, code)
		}
	}

	crossSite := map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/api/v1/machines/" + mac + "/reinstall"},
		{http.MethodPost, "/api/v1/cache/prefetch"},
		{http.MethodDelete, "/api/v1/machines/" + mac},
	} {
		if code, body := adminCall(t, d, c.method, c.path, "", crossSite); code != http.StatusForbidden || !strings.Contains(body, "cross-site") {
			t.Errorf("cross-site %s %s: got %d %s, want 403", c.method, c.path, code, body)
		}
		// A rebinding page is same-origin to the browser; the Host check stops it.
		rebound := map[string]string{"Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"}
		if code, _ := adminCall(t, d, c.method, c.path, "evil.example", rebound); code != http.StatusMisdirectedRequest {
			t.Errorf("rebound %s %s: got %d, want 421", c.method, c.path, code)
		}
	}
	if _, ok, _ := d.state.Get(machine.MustParseMAC(mac)); ok {
		t.Fatal("a refused reinstall made a record")
	}

	sameOrigin := map[string]string{"Origin": self, "Sec-Fetch-Site": "same-origin"}
	if code, body := adminCall(t, d, http.MethodPost, "/api/v1/machines/"+mac+"/reinstall", "", sameOrigin); code != http.StatusOK {
		t.Errorf("same-origin reinstall: got %d %s, want 200", code, body)
	}
	var out bytes.Buffer
	if err := execute(t.Context(), []string{"machines", "forget", mac, "--server", self}, &out, io.Discard); err != nil {
		t.Errorf("tinderbox machines forget: %v", err)
	}
	if _, ok, _ := d.state.Get(machine.MustParseMAC(mac)); ok {
		t.Error("the CLI's forget left the record")
	}
}

// TestWeakTokenRefusedAtStart: newDaemon refuses a token file with a
// guessable token, saying how to make one, and takes a generated one.
func TestWeakTokenRefusedAtStart(t *testing.T) {
	cfg := testConfig(t)
	cfg.Admin.TokenFile = filepath.Join(t.TempDir(), "token")
	writeFile(t, cfg.Admin.TokenFile, "admin123\n")
	if _, err := newDaemon(t.Context(), cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), "openssl rand -hex 32") {
		t.Fatalf("weak token: got %v, want a refusal naming openssl rand -hex 32", err)
	}
	writeFile(t, cfg.Admin.TokenFile, rand.Text()+rand.Text()+"\n")
	d, stop := startDaemon(t, cfg)
	if code, _ := adminCall(t, d, http.MethodGet, "/api/v1/machines", "", nil); code != http.StatusUnauthorized {
		t.Errorf("no bearer token: got %d, want 401", code)
	}
	if err := stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
}

func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }
