// Package state keeps what tinderbox knows of every machine that has
// network-booted (docs/protocol.md, "Machine states"): its state in the
// install-once cycle, arch, UUID, last IP, first and last sighting, and a
// bounded log of boot events.
// Records live in an embedded bbolt database under state.dir, written in
// transactions, so they survive crashes and restarts. Each record is
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
	Generation uint64          `json:"generation"`
	Events     []machine.Event `json:"events,omitempty"`
}

// Summary is a machine's record without its event log: what lists and
// counts need. Last is its newest event, nil when it has none.
type Summary struct {
	MAC        machine.MAC    `json:"mac"`
	State      machine.State  `json:"state"`
	Arch       machine.Arch   `json:"arch,omitempty"`
	UUID       string         `json:"uuid,omitempty"`
	IP         string         `json:"ip,omitempty"`
	FirstSeen  time.Time      `json:"firstSeen"`
	LastSeen   time.Time      `json:"lastSeen"`
	Generation uint64         `json:"generation"`
	Last       *machine.Event `json:"last,omitempty"`
}

// Summary returns m without its event log.
func (m Machine) Summary() Summary {
	s := Summary{
		MAC: m.MAC, State: m.State, Arch: m.Arch, UUID: m.UUID, IP: m.IP,
		FirstSeen: m.FirstSeen, LastSeen: m.LastSeen, Generation: m.Generation,
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
	case machine.Pending, machine.Installing, machine.Installed:
		return cur
	}
	return machine.Pending
}

// ScriptServed applies a network boot (an iPXE script request): a machine
// that was installing has rebooted into the network again after installing,
// so it is now installed, and its config token is rotated (the install
// session's token is spent). It returns the state the script is chosen by.
func (m *Machine) ScriptServed() machine.State {
	if m.State == machine.Installing {
		m.State = machine.Installed
		m.Generation++
	}
	return m.State
}

// ConfigServed applies a served machine config: pending becomes installing.
func (m *Machine) ConfigServed() {
	if m.State == machine.Pending {
		m.State = machine.Installing
	}
}

// ConfigAllowed reports whether the machine's config may be served in its
// state: only while it is to be installed or netbooted.
func (m *Machine) ConfigAllowed() bool {
	switch m.State {
	case machine.Pending, machine.Installing, machine.Netboot:
		return true
	}
	return false
}

// Reinstall re-arms the machine: back to pending, with a new token.
func (m *Machine) Reinstall() {
	m.State = machine.Pending
	m.Generation++
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
