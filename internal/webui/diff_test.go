package webui

import (
	"html"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// TestMachinePageConfigChanges: the machine page shows the diff from the
// config last served to the current one, and says when a machine was
// never served one.
func TestMachinePageConfigChanges(t *testing.T) {
	srv, store := newServerStore(t, "", nil)
	page := func(mac string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + "/machines/" + mac)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /machines/%s: %d %v", mac, resp.StatusCode, err)
		}
		return html.UnescapeString(string(b))
	}
	if p := page(macCP); !strings.Contains(p, "Config changes since last served") || !strings.Contains(p, "has not been served a config") {
		t.Errorf("never served: the page lacks the section or its message")
	}

	mac := machine.MustParseMAC(macCP)
	if _, err := store.Update(mac, func(m *state.Machine, _ bool) error { m.State = machine.Installing; return nil }); err != nil {
		t.Fatal(err)
	}
	old := "version: v1alpha1\nold: line\n"
	if _, err := store.PutServed(mac, state.Served{At: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Hash: "0", Size: len(old), Config: old}); err != nil {
		t.Fatal(err)
	}
	p := page(macCP)
	i := strings.Index(p, `id="config-diff"`)
	if i < 0 {
		t.Fatalf("served: the page has no diff")
	}
	diff := p[i:]
	if !strings.Contains(diff, "--- served\n+++ current\n") || !strings.Contains(diff, "\n-old: line\n") || !strings.Contains(p, "2026-03-01 12:00:00 UTC") {
		t.Errorf("served: the diff lacks its labels, the removed line or the time served:\n%s", diff[:min(len(diff), 600)])
	}
}
