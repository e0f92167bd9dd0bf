package bootflow

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tinderbox-boot/tinderbox/internal/talosevents"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func talosEvent(id string, msg any) talosevents.Event {
	return talosevents.Event{ID: id, Message: msg}
}

// TestTalosEvents: what cp-01's Talos reports from its own address moves
// its install cycle and lands on its timeline; the same report from
// another host, a repeated one, or one for a machine with no record,
// changes nothing.
func TestTalosEvents(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	e.neigh.set(intruder, macIntruder)
	from := netip.AddrPortFrom(hostOf(macOnce), 50000)
	e.neigh.set(from.Addr(), macOnce)

	// cp-01 gets its script and its config: installing.
	_, body := e.get(t, scriptPath(macOnce))
	if code, _ := e.get(t, configPath(t, e, body)); code != 200 {
		t.Fatalf("config: %d", code)
	}

	start := talosEvent("01", talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStart})
	fail := talosEvent("02", talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop,
		Error: &talosevents.Error{Message: "failed to install: disk /dev/sdz not found"}})

	// Another host sending cp-01's events: they are its own (the neighbour
	// table says whose they are), and it has no record.
	e.flow.TalosEvent(t.Context(), netip.AddrPortFrom(intruder, 50000), fail)
	if m := e.machine(t, macOnce); m.State != machine.Installing || m.Reporting {
		t.Fatalf("after the intruder's report: %s, reporting %v", m.State, m.Reporting)
	}

	e.flow.TalosEvent(t.Context(), from, start)
	e.flow.TalosEvent(t.Context(), from, fail)
	m := e.machine(t, macOnce)
	if m.State != machine.Failed || !strings.Contains(m.Failure, "disk /dev/sdz not found") {
		t.Fatalf("after the install's error: %s, failure %q", m.State, m.Failure)
	}
	var kinds []string
	for _, ev := range m.Events {
		if ev.Kind == machine.EventTalos || ev.Kind == machine.EventTransition {
			kinds = append(kinds, ev.Detail)
		}
	}
	want := "install sequence started|install sequence failed: failed to install: disk /dev/sdz not found|installing → failed"
	if got := strings.Join(kinds, "|"); got != want {
		t.Errorf("timeline:\n got %s\nwant %s", got, want)
	}

	// The retry: config again, a clean install, then running and ready.
	_, body = e.get(t, scriptPath(macOnce))
	e.get(t, configPath(t, e, body))
	e.flow.TalosEvent(t.Context(), from, talosEvent("03", talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStart}))
	e.flow.TalosEvent(t.Context(), from, talosEvent("04", talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStop}))
	e.flow.TalosEvent(t.Context(), from, talosEvent("05", talosevents.MachineStatusEvent{Stage: talosevents.StageRunning, Ready: true}))
	if m := e.machine(t, macOnce); m.State != machine.Ready || m.Stage != "running" || !m.Ready || m.Failure != "" {
		t.Errorf("after the retry: %s stage %q ready %v failure %q", m.State, m.Stage, m.Ready, m.Failure)
	}

	// Talos sends events again after it reconnects: the repeated error
	// must not fail a ready machine... nor anything else.
	e.flow.TalosEvent(t.Context(), from, fail)
	if m := e.machine(t, macOnce); m.State != machine.Ready {
		t.Errorf("a repeated event changed the state to %s", m.State)
	}
	if got := testutil.ToFloat64(e.flow.steps.WithLabelValues("talos", "repeated")); got != 1 {
		t.Errorf("repeated events: got %v, want 1", got)
	}

	// A sender the neighbour table knows, but that never booted here.
	e.flow.TalosEvent(t.Context(), netip.AddrPortFrom(intruder, 1), talosEvent("06", talosevents.SequenceEvent{Sequence: "boot", Action: talosevents.SequenceStart}))
	if _, ok, _ := e.store.Get(macIntruder); ok {
		t.Error("a Talos event made a record")
	}
	if got := testutil.ToFloat64(e.flow.steps.WithLabelValues("talos", "no_record")); got != 2 {
		t.Errorf("events without a record: got %v, want 2 (the intruder's two)", got)
	}
	if got := testutil.ToFloat64(e.flow.steps.WithLabelValues("talos", "unbound")); got != 0 {
		t.Errorf("unbound events: got %v, want 0 (the intruder is in the neighbour table)", got)
	}
	// Phases and tasks are not install progress.
	e.flow.TalosEvent(t.Context(), from, talosEvent("07", talosevents.PhaseEvent{Phase: "install"}))
	if got := testutil.ToFloat64(e.flow.steps.WithLabelValues("talos", "ok")); got != 5 {
		t.Errorf("applied events: got %v, want 5", got)
	}
}

// TestTalosEventsUnbound: a sender nothing ties to a machine is dropped.
func TestTalosEventsUnbound(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	seed(t, e, macOnce)
	e.flow.TalosEvent(t.Context(), netip.AddrPortFrom(nobody, 1), talosEvent("1", talosevents.SequenceEvent{Sequence: "install", Action: talosevents.SequenceStart}))
	if m := e.machine(t, macOnce); m.State != machine.Pending || m.Reporting {
		t.Errorf("an unbound report moved cp-01: %s", m.State)
	}
	if got := testutil.ToFloat64(e.flow.steps.WithLabelValues("talos", "unbound")); got != 1 {
		t.Errorf("unbound events: got %v, want 1", got)
	}
}
