// Package machineview is how the admin API and the web UI show a machine:
// the state store's record joined with the machine's profile (api.Machine),
// its events named and folded into the stages of a boot, and its rendered
// config with the secrets masked. Both import it, so a machine reads the
// same in JSON and in HTML.
package machineview

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/api"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Records is what Views reads of the state store. Every state.Backend
// implements it.
// List gives summaries only, so a list never reads any event log.
type Records interface {
	Get(mac machine.MAC) (m state.Machine, ok bool, err error)
	List() ([]state.Summary, error)
}

// Profiles is what Views reads of the profiles. *profiles.Store
// implements it.
type Profiles interface {
	Machine(mac machine.MAC) (p profiles.Profile, ok bool)
	Machines() []profiles.Profile
}

// Views joins state records with profiles. It is safe for concurrent use
// when its sources are.
type Views struct {
	Records  Records
	Profiles Profiles
	// StallAfter is reports.stallAfter: a machine part-way through a boot
	// or an install that makes no progress this long is stalled; 0 never.
	StallAfter time.Duration
	// Now is the clock stalls are measured by; nil means time.Now.
	Now func() time.Time
}

// Of joins rec, a record's summary (recorded says whether there is one),
// with mac's profile, without the events. A machine with a profile that
// never booted shows the state it would start in and its profile's arch.
func (v Views) Of(mac machine.MAC, rec state.Summary, recorded bool) api.Machine {
	prof, known := v.Profiles.Machine(mac)
	m := api.Machine{MAC: mac, Hostname: prof.Hostname, Profile: known}
	if recorded {
		m.State, m.Arch, m.UUID, m.IP = rec.State, rec.Arch, rec.UUID, rec.IP
		m.FirstSeen, m.LastSeen = &rec.FirstSeen, &rec.LastSeen
		if rec.Last != nil {
			m.LastStep = StepLabel(*rec.Last)
		}
		if rec.Reporting {
			m.Talos = &api.TalosReport{Stage: rec.Stage, Ready: rec.Ready, At: rec.ReportedAt}
		}
		m.Failure = rec.Failure
		m.Attention = v.attention(rec)
	} else {
		m.State = state.Reconcile("", known, prof.Install)
		m.Arch = prof.Talos.Arch
	}
	return m
}

// Get returns mac's view with its events; found is false for a MAC with
// neither a record nor a profile.
func (v Views) Get(mac machine.MAC) (m api.Machine, found bool, err error) {
	rec, recorded, err := v.Records.Get(mac)
	if err != nil {
		return api.Machine{}, false, err
	}
	m = v.Of(mac, rec.Summary(), recorded)
	m.Events = rec.Events
	return m, recorded || m.Profile, nil
}

// List returns every machine with a record or a profile, by MAC, without
// their events (it reads none).
func (v Views) List() ([]api.Machine, error) {
	recs, err := v.Records.List()
	if err != nil {
		return nil, err
	}
	out := make([]api.Machine, 0, len(recs))
	seen := map[machine.MAC]bool{}
	for _, r := range recs {
		out = append(out, v.Of(r.MAC, r, true))
		seen[r.MAC] = true
	}
	for _, p := range v.Profiles.Machines() {
		if !seen[p.MAC] {
			out = append(out, v.Of(p.MAC, state.Summary{}, false))
		}
	}
	slices.SortFunc(out, func(x, y api.Machine) int { return bytes.Compare(x.MAC[:], y.MAC[:]) })
	return out, nil
}

// attention says why a machine needs an operator, "" when it does not: it
// failed, or it stalled part-way (pending after its first boot step, or
// installing) with no event for StallAfter.
func (v Views) attention(rec state.Summary) string {
	if rec.State == machine.Failed {
		return "failed: " + rec.Failure
	}
	if v.StallAfter <= 0 || rec.Last == nil || (rec.State != machine.Pending && rec.State != machine.Installing) {
		return ""
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	idle := now().Sub(rec.LastSeen)
	if idle < v.StallAfter {
		return ""
	}
	return fmt.Sprintf("stalled: no progress for %s after %s", idle.Round(time.Minute), StepLabel(*rec.Last))
}

// StepLabel names an event for people: its boot stage ("Kernel"), else
// its kind in words ("reinstall").
func StepLabel(e machine.Event) string {
	if st := e.Kind.Stage(); st != machine.StageNone {
		return st.String()
	}
	return strings.ReplaceAll(string(e.Kind), "_", " ")
}
