package webui

import (
	"encoding/json"
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

// TestMachinePageRepeats: a run of repeated script requests shows as one
// event with its count and first time, on the page (events and timeline)
// and in the API's JSON.
func TestMachinePageRepeats(t *testing.T) {
	srv, store := newServerStore(t, "", nil)
	mac := machine.MustParseMAC(macCP)
	at := func(s int) time.Time { return time.Date(2026, 3, 1, 12, 0, s, 0, time.UTC) }
	if _, err := store.Update(mac, func(m *state.Machine, _ bool) error {
		m.State = machine.Pending
		m.Events = append(m.Events, machine.Event{Time: at(1), Kind: machine.EventDHCPOffer, Detail: "offer ipxe.efi"})
		for s := 2; s <= 6; s++ {
			m.Events = append(m.Events, machine.Event{Time: at(s), Kind: machine.EventScript, Detail: "netboot"})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
		}
		return html.UnescapeString(string(b))
	}
	p := get("/machines/" + macCP)
	events := p[strings.Index(p, `id="events"`):]
	if !strings.Contains(events, "All events (2)") || !strings.Contains(events, "×5") || !strings.Contains(events, "since 2026-03-01 12:00:02") {
		t.Errorf("the events table lacks the run of 5 since 12:00:02:\n%s", events[:min(len(events), 1200)])
	}
	timeline := p[strings.Index(p, `id="timeline"`):strings.Index(p, `id="events"`)]
	if !strings.Contains(timeline, "×5") {
		t.Errorf("the timeline's script step lacks its count:\n%s", timeline)
	}
	var m struct {
		Events []machine.Event `json:"events"`
	}
	if err := json.Unmarshal([]byte(get("/api/v1/machines/"+macCP)), &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Events) != 2 || m.Events[1].Count != 5 || !m.Events[1].Since.Equal(at(2)) || !m.Events[1].Time.Equal(at(6)) {
		t.Errorf("API events %+v; want the offer and a run of 5 scripts from 12:00:02 to 12:00:06", m.Events)
	}
}
