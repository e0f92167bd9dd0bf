package bootflow

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/evidence"
	"github.com/tinderbox-boot/tinderbox/internal/kmsglog"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/internal/talosevents"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// maxSeenIDs bounds the event ids remembered to drop the events Talos
// sends again after it reconnects to the sink.
const maxSeenIDs = 1 << 16

// TalosEvent implements talosevents.Recorder: what a machine's Talos
// reports of itself moves its install cycle (state.Machine.Reported) and
// lands on its timeline. The machine is the one the evidence ties the
// sender's address to (internal/evidence, Identify); a report from an
// address nothing ties to a machine, or for a machine with no record, is
// dropped. Events Talos sends again after a reconnection (same id) are
// dropped too. Phase, task, service and address events are not install
// progress and are only counted by the sink. A report the state store
// could not write (etcd without quorum) is an error, for the sink to
// refuse it: Talos sends it again later, and its id is not taken for
// seen.
func (f *Flow) TalosEvent(ctx context.Context, from netip.AddrPort, ev talosevents.Event) error {
	rep, detail, ok := reportOf(ev.Message)
	if !ok {
		return nil
	}
	mac, via, why := f.ev.Identify(from.Addr())
	if via == evidence.ViaNone {
		f.steps.WithLabelValues("talos", "unbound").Inc()
		f.log.InfoContext(ctx, "Talos event dropped: its sender is no known machine", "remote", from.Addr(), "event", detail, "reason", why)
		return nil
	}
	seen := mac.String() + "/" + ev.ID
	if ev.ID != "" && f.seenBefore(seen) {
		f.steps.WithLabelValues("talos", "repeated").Inc()
		return nil
	}
	now := f.opts.Store.Event(machine.EventTalos, "", 0).Time
	var (
		before, after machine.State
		started       time.Time
	)
	_, err := f.update(mac, func(m *state.Machine, exists bool) error {
		if !exists {
			return errNoRecord
		}
		before = m.Reported(rep, now)
		after = m.State
		started = sessionStart(m)
		m.Events = append(m.Events, machine.Event{Time: now, Kind: machine.EventTalos, Detail: detail})
		if before != after {
			m.Events = append(m.Events, machine.Event{Time: now, Kind: machine.EventTransition, Detail: string(before) + " → " + string(after)})
		}
		return nil
	})
	switch {
	case err == nil:
		f.steps.WithLabelValues("talos", "ok").Inc()
		f.countInstall(before, after, now.Sub(started))
		f.log.InfoContext(ctx, "Talos reported", "mac", mac, "remote", from.Addr(), "event", detail, "state", after, "evidence", via)
	case errors.Is(err, errNoRecord):
		f.steps.WithLabelValues("talos", "no_record").Inc()
		f.log.InfoContext(ctx, "Talos event dropped: no record for its machine", "mac", mac, "remote", from.Addr(), "event", detail)
	default:
		f.steps.WithLabelValues("talos", "error").Inc()
		f.log.ErrorContext(ctx, "state: record Talos event; refused for Talos to send it again", "mac", mac, "err", err)
		if ev.ID != "" {
			f.forgetSeen(seen)
		}
		return err
	}
	return nil
}

// countInstall counts an install's start and end, and times how long it
// took from the session's first DHCP offer to installed and to ready.
func (f *Flow) countInstall(before, after machine.State, since time.Duration) {
	if before == after {
		return
	}
	switch after {
	case machine.Installing:
		f.installs.WithLabelValues("started").Inc()
	case machine.Failed:
		f.installs.WithLabelValues("failed").Inc()
	case machine.Installed:
		if before != machine.Ready {
			f.installs.WithLabelValues("succeeded").Inc()
			f.installTime.WithLabelValues("installed").Observe(since.Seconds())
		}
	case machine.Ready:
		f.installTime.WithLabelValues("ready").Observe(since.Seconds())
	}
}

// sessionStart is when the machine's current install session began: its
// first DHCP offer after its last reinstall, else its first sighting.
func sessionStart(m *state.Machine) time.Time {
	var start time.Time
	for _, e := range m.Events {
		switch e.Kind {
		case machine.EventReinstall:
			start = time.Time{}
		case machine.EventDHCPOffer:
			if start.IsZero() {
				start = e.First() // a run of offers began at its first
			}
		}
	}
	if start.IsZero() {
		return m.FirstSeen
	}
	return start
}

// reportOf turns the events that move the install cycle into a report and
// a timeline line; ok is false for the others.
func reportOf(msg any) (r state.Report, detail string, ok bool) {
	switch e := msg.(type) {
	case talosevents.SequenceEvent:
		return sequenceReport(e.Sequence, e.Action, e.Error)
	case talosevents.MachineStatusEvent:
		return statusReport(e)
	case talosevents.ConfigLoadErrorEvent:
		return configReport("load", e.Error)
	case talosevents.ConfigValidationErrorEvent:
		return configReport("validation", e.Error)
	}
	return state.Report{}, "", false
}

func sequenceReport(seq string, a talosevents.SequenceAction, e *talosevents.Error) (state.Report, string, bool) {
	switch a {
	case talosevents.SequenceStart:
		return state.Report{Sequence: seq}, seq + " sequence started", true
	case talosevents.SequenceStop:
		r := state.Report{Sequence: seq, Stop: true}
		if e != nil {
			r.Error = e.Message
			if r.Error == "" {
				r.Error = "error " + e.Code.String()
			}
			return r, seq + " sequence failed: " + r.Error, true
		}
		return r, seq + " sequence done", true
	}
	return state.Report{}, "", false
}

func statusReport(e talosevents.MachineStatusEvent) (state.Report, string, bool) {
	stage := strings.ToLower(e.Stage.String())
	detail := stage
	if e.Ready {
		detail += ", ready"
	} else if n := len(e.Unmet); n > 0 {
		detail += fmt.Sprintf(", not ready: %s (%s)", e.Unmet[0].Name, e.Unmet[0].Reason)
		if n > 1 {
			detail += fmt.Sprintf(" and %d more", n-1)
		}
	}
	return state.Report{Stage: stage, Ready: e.Ready}, detail, true
}

func configReport(what, msg string) (state.Report, string, bool) {
	seq := "config " + what
	return state.Report{Sequence: seq, Stop: true, Error: msg}, seq + " failed: " + msg, true
}

// seenBefore records key (a MAC and an event id: ids are only unique per
// node) and reports whether it was recorded already.
func (f *Flow) seenBefore(key string) bool {
	f.idsMu.Lock()
	defer f.idsMu.Unlock()
	if _, ok := f.ids[key]; ok {
		return true
	}
	if len(f.ids) >= maxSeenIDs {
		clear(f.ids)
	}
	f.ids[key] = struct{}{}
	return false
}

// forgetSeen takes key (seenBefore's) off the ids seen, for an event
// that was not recorded.
func (f *Flow) forgetSeen(key string) {
	f.idsMu.Lock()
	defer f.idsMu.Unlock()
	delete(f.ids, key)
}

// LogSink returns the sink of the Talos log receiver: each line goes to
// buf under the machine the evidence ties its sender's address to
// (Identify), so a machine's console holds only what its own Talos sent.
// Lines from an address nothing ties to a machine are dropped and counted.
func (f *Flow) LogSink(buf *kmsglog.Buffer[machine.MAC]) kmsglog.Sink {
	return kmsglog.SinkFunc(func(from netip.AddrPort, l kmsglog.Line) {
		mac, via, _ := f.ev.Identify(from.Addr())
		if via == evidence.ViaNone {
			f.steps.WithLabelValues("talos_log", "unbound").Inc()
			return
		}
		buf.Add(mac, l)
	})
}
