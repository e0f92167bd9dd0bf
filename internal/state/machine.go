// Package state keeps what tinderbox knows of every machine that has
// network-booted (docs/protocol.md, "Machine states"): its state in the
// install-once cycle, arch, UUID, last IP, first and last sighting, and a
// bounded log of boot events.
// Records live in an embedded bbolt database under state.dir, written in
// transactions, so they survive crashes and restarts.
//
// The transition rules are pure functions over values (Reconcile, and the
// Machine methods), so the boot flow can be tested without a database.
package state

import (
	"slices"
	"time"

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
