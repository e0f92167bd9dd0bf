// Package state keeps what tinderbox knows of every machine that has
// network-booted (docs/protocol.md, "Machine states"): its state in the
// install-once cycle, arch, UUID, last IP, first and last sighting, and a
// bounded log of boot events.
// Records live in an embedded bbolt database under state.dir (Store), or
// in an etcd cluster several replicas share (EtcdStore); both implement
// Backend, write in transactions, and survive crashes and restarts. Each record is
// bounded in size (its text fields are clipped, its event log trimmed),
// and records of discovered machines are bounded in number and expire.
// A machine's summary and its event log are stored apart, so listing and
// counting machines never reads an event log.
//
// The transition rules are pure functions over values (Reconcile, and the
// Machine methods), so the boot flow can be tested without a database.
package state

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Machine is everything tinderbox records of one MAC address.
type Machine struct {
	// MAC is the record's key; JSON carries its canonical colon form.
	MAC       machine.MAC   `json:"mac"`
	State     machine.State `json:"state"`
	Arch      machine.Arch  `json:"arch,omitempty"`
	UUID      string        `json:"uuid,omitempty"`
	IP        string        `json:"ip,omitempty"`
	FirstSeen time.Time     `json:"firstSeen"`
	LastSeen  time.Time     `json:"lastSeen"`
	// Generation counts install sessions; the config token is derived
	// from it, so a reinstall and a completed install rotate the token.
	Generation uint64 `json:"generation"`
	Talos
	Events []machine.Event `json:"events,omitempty"`
}

// Talos is what the machine's Talos reported of itself through the event
// sink (Reported), and why a machine failed.
type Talos struct {
	// Reporting is true once Talos reported anything in this install
	// session (a reinstall clears it): from then on, only its reports
	// mark the install done.
	Reporting bool `json:"reporting,omitempty"`
	// Stage and Ready are its last machine status: "booting",
	// "installing", "maintenance", "running", "rebooting", …
	Stage string `json:"stage,omitempty"`
	Ready bool   `json:"ready,omitempty"`
	// ReportedAt is when it last reported.
	ReportedAt time.Time `json:"reportedAt,omitzero"`
	// Failure says why the machine is failed: Talos' own error message,
	// or what tinderbox saw.
	Failure string `json:"failure,omitempty"`
}

// Summary is a machine's record without its event log: what lists and
// counts need. Last is its newest event, nil when it has none.
type Summary struct {
	MAC        machine.MAC   `json:"mac"`
	State      machine.State `json:"state"`
	Arch       machine.Arch  `json:"arch,omitempty"`
	UUID       string        `json:"uuid,omitempty"`
	IP         string        `json:"ip,omitempty"`
	FirstSeen  time.Time     `json:"firstSeen"`
	LastSeen   time.Time     `json:"lastSeen"`
	Generation uint64        `json:"generation"`
	Talos
	Last *machine.Event `json:"last,omitempty"`
}

// Summary returns m without its event log.
func (m Machine) Summary() Summary {
	s := Summary{
		MAC: m.MAC, State: m.State, Arch: m.Arch, UUID: m.UUID, IP: m.IP,
		FirstSeen: m.FirstSeen, LastSeen: m.LastSeen, Generation: m.Generation, Talos: m.Talos,
	}
	if n := len(m.Events); n > 0 {
		last := m.Events[n-1]
		s.Last = &last
	}
	return s
}

// The most bytes Update stores of each text field; longer values are
// clipped, ending in ClipMark. They bound one record whatever its callers
// pass: with DefaultMaxEvents events, its summary and event log stay under
// 128 KiB even when every byte needs JSON's six-byte escape.
const (
	// MaxUUID is the length of a canonical SMBIOS UUID
	// (8-4-4-4-12 hex digits, RFC 9562 section 4).
	MaxUUID = 36
	// MaxIP is the length of the longest textual IPv6 address, one with
	// an embedded IPv4 address (INET6_ADDRSTRLEN less its NUL).
	MaxIP = 45
	// MaxName bounds a state, an arch and an event kind: each is a short
	// word from tinderbox's own vocabulary.
	MaxName = 32
	// MaxDetail bounds an event's detail: a file name, an asset key or a
	// refusal's reason, which fit in a few hundred bytes.
	MaxDetail = 256
	// ClipMark ends a clipped value.
	ClipMark = "…"
)

// clip returns s cut to at most n bytes, ending in ClipMark when it was
// longer, at a rune boundary and as valid UTF-8 (invalid bytes become '?').
func clip(s string, n int) string {
	if len(s) <= n && utf8.ValidString(s) {
		return s
	}
	if len(s) > n {
		cut := n - len(ClipMark)
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + ClipMark
	}
	// Each run of invalid bytes becomes one byte, so s stays within n.
	return strings.ToValidUTF8(s, "?")
}

// bound clips every text field of m to its limit.
func (m *Machine) bound() {
	m.State = machine.State(clip(string(m.State), MaxName))
	m.Arch = machine.Arch(clip(string(m.Arch), MaxName))
	m.UUID = clip(m.UUID, MaxUUID)
	m.IP = clip(m.IP, MaxIP)
	m.Stage = clip(m.Stage, MaxName)
	m.Failure = clip(m.Failure, MaxDetail)
	for i := range m.Events {
		e := &m.Events[i]
		e.Kind = machine.EventKind(clip(string(e.Kind), MaxName))
		e.Detail = clip(e.Detail, MaxDetail)
	}
}

// Reconcile returns the state a machine should be in given its profile:
// known says whether it has one, install is the profile's mode. A machine
// part-way through install: once keeps its place in the cycle.
func Reconcile(cur machine.State, known bool, install machine.Install) machine.State {
	switch {
	case !known:
		return machine.Discovered
	case install == machine.InstallNever:
		return machine.Local
	case install == machine.InstallAlways:
		return machine.Netboot
	}
	switch cur {
	case machine.Pending, machine.Installing, machine.Failed, machine.Installed, machine.Ready:
		return cur
	}
	return machine.Pending
}

// ScriptServed applies a network boot (an iPXE script request) and
// returns the state the script is chosen by. A machine that was installing
// has rebooted into the network again: if its Talos never reported, that
// is the only sign the install finished, so it is now installed and its
// config token is rotated (the session's token is spent); if Talos did
// report but never said the install was done, the install failed.
func (m *Machine) ScriptServed() machine.State {
	if m.State == machine.Installing {
		if m.Reporting {
			m.fail("network-booted again before Talos reported its install done")
		} else {
			m.State = machine.Installed
			m.Generation++
		}
	}
	return m.State
}

// ConfigServed applies a served machine config: pending (or failed, on a
// retry) becomes installing.
func (m *Machine) ConfigServed() {
	if m.State == machine.Pending || m.State == machine.Failed {
		m.State = machine.Installing
	}
}

// ConfigAllowed reports whether the machine's config may be served in its
// state: only while it is to be installed (a failed install is retried)
// or netbooted.
func (m *Machine) ConfigAllowed() bool {
	switch m.State {
	case machine.Pending, machine.Installing, machine.Failed, machine.Netboot:
		return true
	}
	return false
}

// Reinstall re-arms the machine: back to pending, with a new token, and
// what Talos reported of the last session forgotten.
func (m *Machine) Reinstall() {
	m.State = machine.Pending
	m.Generation++
	m.Talos = Talos{}
}

func (m *Machine) fail(why string) {
	m.State = machine.Failed
	m.Failure = why
}

// Report is one thing Talos said of itself through its event sink, as the
// install cycle reads it; internal/talosevents decodes the wire.
type Report struct {
	// Sequence names a sequence event ("install", "boot", "initialize",
	// …; Talos' machine.SequenceEvent); Stop tells its end from its start,
	// and Error is the message of one that ended with an error.
	Sequence string
	Stop     bool
	Error    string
	// Stage is a machine status event's stage in lower case ("running",
	// "maintenance", …; Talos' machine.MachineStatusEvent), "" for a
	// sequence; Ready is its status.ready.
	Stage string
	Ready bool
}

// Reported applies a report from the machine's Talos, at now, and returns
// the state before it. In the install cycle: the install sequence's start
// makes it installing; a sequence that ends with an error while it is
// pending or installing, or maintenance mode while installing, makes it
// failed with the reason; the install sequence's clean end makes it
// installed (and spends the token); running and ready makes an installed
// machine ready, anything else a ready one installed again. Machines
// outside the install cycle (discovered, netboot, local) only record it.
func (m *Machine) Reported(r Report, now time.Time) (before machine.State) {
	before = m.State
	m.Reporting = true
	m.ReportedAt = now
	if r.Stage != "" {
		m.Stage, m.Ready = r.Stage, r.Ready
	}
	switch m.State {
	case machine.Pending, machine.Installing, machine.Failed, machine.Installed, machine.Ready:
	default:
		return before
	}
	switch {
	case r.Sequence == "install" && !r.Stop:
		if m.State != machine.Installed && m.State != machine.Ready {
			m.State, m.Failure = machine.Installing, ""
		}
	case r.Sequence != "" && r.Stop && r.Error != "":
		if m.State == machine.Pending || m.State == machine.Installing {
			m.fail("Talos " + r.Sequence + " sequence failed: " + r.Error)
		}
	case r.Sequence == "install" && r.Stop:
		if m.State == machine.Installing || m.State == machine.Pending || m.State == machine.Failed {
			m.State, m.Failure = machine.Installed, ""
			m.Generation++
		}
	case r.Stage == "maintenance":
		if m.State == machine.Installing {
			m.fail("Talos is in maintenance mode: it did not take its machine config")
		}
	case r.Stage != "":
		switch {
		case m.State == machine.Installed && r.Stage == "running" && r.Ready:
			m.State = machine.Ready
		case m.State == machine.Ready && (r.Stage != "running" || !r.Ready):
			m.State = machine.Installed
		}
	}
	return before
}

// LastEvent returns the newest event of kind k, if any.
func (m Machine) LastEvent(k machine.EventKind) (machine.Event, bool) {
	for _, e := range slices.Backward(m.Events) {
		if e.Kind == k {
			return e, true
		}
	}
	return machine.Event{}, false
}
