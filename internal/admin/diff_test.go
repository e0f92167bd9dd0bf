package admin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	bolt "go.etcd.io/bbolt"

	"github.com/tinderbox-boot/tinderbox/internal/bootflow"
	"github.com/tinderbox-boot/tinderbox/internal/served"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Secrets of the example profiles' controlplane.yaml (fake, but key
// material all the same for the test): none may reach the database.
var exampleSecrets = []string{
	"exampl.notarealtoken001",
	"exampl.notarealtoken002",
	"RVhBTVBMRS1PTkxZLWNsdXN0ZXItc2VjcmV0LW5vdC1yZWFsISE=",
	"RVhBTVBMRS1PTkxZLXNlY3JldGJveC1rZXktbm90LXJlYWwhISE=",
	"LS0tLS1CRUdJTiBFRDI1NTE5IFBSSVZBVEUgS0VZLS0tLS0K",
}

// serveConfig walks mac through its script to its config on a boot
// server of the harness's flow, as a node would, and waits until the
// served config is kept. It returns the bytes served.
func serveConfig(t *testing.T, f *full, mac string) []byte {
	t.Helper()
	flow := f.api.opts.Scripts.(*bootflow.Flow)
	r := chi.NewRouter()
	flow.Mount(r)
	boot := httptest.NewServer(r)
	defer boot.Close()
	get := func(path string) []byte {
		t.Helper()
		resp, err := http.Get(boot.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v\n%s", path, resp.StatusCode, err, b)
		}
		return b
	}
	script := get("/ipxe?mac=" + mac + "&arch=x86_64")
	m := regexp.MustCompile(`talos\.config=http://[^/\s]+(/\S+)`).FindSubmatch(script) // the host: the address the request came to
	if m == nil {
		t.Fatalf("no talos.config in:\n%s", script)
	}
	body := get(string(m[1]))
	_ = flow.Flush(t.Context())
	return body
}

func getDiff(t *testing.T, f *full) (int, api.ConfigDiff, string) {
	t.Helper()
	code, _, body := call(t, f.srv.URL, http.MethodGet, "/api/v1/machines/"+machine.MustParseMAC(macCP).Dashed()+"/config/diff", "tok", "", nil)
	var d api.ConfigDiff
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &d); err != nil {
			t.Fatalf("diff answer: %v\n%s", err, body)
		}
	}
	return code, d, body
}

// changedLines are a unified diff's removed and added lines.
func changedLines(diff string) (minus, plus []string) {
	for _, l := range strings.Split(diff, "\n") {
		switch {
		case strings.HasPrefix(l, "---"), strings.HasPrefix(l, "+++"):
		case strings.HasPrefix(l, "-"):
			minus = append(minus, strings.TrimSpace(l[1:]))
		case strings.HasPrefix(l, "+"):
			plus = append(plus, strings.TrimSpace(l[1:]))
		}
	}
	return minus, plus
}

// TestConfigDiff: a machine never served a config has nothing to
// compare; once served, the diff is empty; after a patch and a secret
// change, it holds exactly those lines, the secret masked; and what the
// database keeps has no key material.
func TestConfigDiff(t *testing.T) {
	f := newFull(t, "tok", nil)

	code, _, body := getDiff(t, f)
	if code != http.StatusNotFound || !strings.Contains(body, "has not been served a config") {
		t.Fatalf("never served: got %d %s, want 404 saying so", code, body)
	}

	sent := serveConfig(t, f, machine.MustParseMAC(macCP).Dashed())
	code, d, body := getDiff(t, f)
	if code != http.StatusOK || d.Changed || d.Diff != "" || d.ServedHash != served.Hash(sent) || d.CurrentHash != d.ServedHash || d.ServedAt.IsZero() {
		t.Fatalf("just served: got %d %+v (%s), want no change, both hashes %s", code, d, body, served.Hash(sent))
	}
	first := f.profiles.Status().Hash
	if first == "" || d.ServedProfileSet != first || d.CurrentProfileSet != first {
		t.Errorf("just served: got profile sets %q served, %q current; want both %q", d.ServedProfileSet, d.CurrentProfileSet, first)
	}

	edit := func(rel, old, new string) {
		t.Helper()
		path := filepath.Join(f.dir, rel)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), old) {
			t.Fatalf("%s has no %q", rel, old)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("patches/common.yaml", "gateway: {{ cidrhost .Values.lan 1 }}", "gateway: {{ cidrhost .Values.lan 2 }}")
	edit("secrets.yaml", "token: exampl.notarealtoken001", "token: exampl.notarealtoken009")
	if err := f.profiles.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}

	code, d, body = getDiff(t, f)
	if code != http.StatusOK || !d.Changed || d.CurrentHash == d.ServedHash {
		t.Fatalf("after edits: got %d %s, want a change", code, body)
	}
	if now := f.profiles.Status().Hash; d.ServedProfileSet != first || d.CurrentProfileSet != now || now == first {
		t.Errorf("after edits: got profile sets %q served, %q current; want %q served, the reloaded set's %q current", d.ServedProfileSet, d.CurrentProfileSet, first, now)
	}
	minus, plus := changedLines(d.Diff)
	tagOld, tagNew := served.Marker(f.store.MaskTag("exampl.notarealtoken001")), served.Marker(f.store.MaskTag("exampl.notarealtoken009"))
	wantMinus := []string{"token: " + tagOld, "- gateway: 192.168.1.1"}
	wantPlus := []string{"token: " + tagNew, "- gateway: 192.168.1.2"}
	if !slices.Equal(minus, wantMinus) || !slices.Equal(plus, wantPlus) {
		t.Errorf("diff lines: got -%q +%q, want -%q +%q\n%s", minus, plus, wantMinus, wantPlus, d.Diff)
	}
	if !strings.HasPrefix(d.Diff, "--- served\n+++ current\n") {
		t.Errorf("diff labels:\n%s", d.Diff)
	}
	for _, s := range append(exampleSecrets, "exampl.notarealtoken009") {
		if strings.Contains(d.Diff, s) {
			t.Errorf("diff holds the secret %s", s)
		}
	}

	// What is at rest: read the bucket itself.
	f.store.Close()
	db, err := bolt.Open(filepath.Join(f.stateDir, "state.db"), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var raw []byte
	if err := db.View(func(tx *bolt.Tx) error {
		raw = slices.Clone(tx.Bucket([]byte("served")).Get([]byte(macCP)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 {
		t.Fatal("no served record in the served bucket")
	}
	for _, s := range exampleSecrets {
		if strings.Contains(string(raw), s) {
			t.Errorf("stored record holds the secret %s", s)
		}
	}
	var rec struct{ Config string }
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(rec.Config, "key: <masked:") || !strings.Contains(rec.Config, "crt: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t") {
		t.Errorf("stored config: want keys masked and certificates kept:\n%s", rec.Config)
	}
}
