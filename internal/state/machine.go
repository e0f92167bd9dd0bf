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
)

// State is where a machine stands in its boot and install cycle.
type State string

// The states of docs/protocol.md, "Machine states".
const (
	// Discovered: the machine PXE-booted but has no profile.
	Discovered State = "discovered"
	// Pending: install: once, waiting to netboot the installer.
	Pending State = "pending"
	// Installing: its machine config was served; Talos is installing.
	Installing State = "installing"
	// Installed: it network-booted again after installing; it is told to
	// boot its disk until re-armed.
	Installed State = "installed"
	// Netboot: install: always; it netboots Talos on every boot.
	Netboot State = "netboot"
	// Local: install: never; it is told to boot its disk.
	Local State = "local"
)

// States lists every state, in cycle order.
var States = []State{Discovered, Pending, Installing, Installed, Netboot, Local}

// Install is a profile's install mode.
type Install string

// The install modes of a profile's `install` key (docs/profiles.md).
const (
	InstallOnce   Install = "once"
	InstallAlways Install = "always"
	InstallNever  Install = "never"
)

// EventKind names a boot step or an operator action.
type EventKind string

// The events recorded per machine.
const (
	EventDHCPOffer  EventKind = "dhcp_offer"    // proxy offer or ack sent
	EventTFTP       EventKind = "tftp"          // iPXE binary sent over TFTP
	EventScript     EventKind = "script"        // iPXE script served
	EventAsset      EventKind = "asset"         // kernel or initramfs sent
	EventConfig     EventKind = "config"        // machine config served
	EventLocalBoot  EventKind = "local_boot"    // told to boot the local disk
	EventReinstall  EventKind = "reinstall"     // re-armed by the operator
	EventTransition EventKind = "transition"    // state changed
	EventDenied     EventKind = "config_denied" // config asked for with a missing or wrong token
)

// Event is one timestamped entry of a machine's log.
type Event struct {
	Time   time.Time `json:"time"`
	Kind   EventKind `json:"kind"`
	Detail string    `json:"detail,omitempty"`
	Bytes  int64     `json:"bytes,omitempty"`
}

// Machine is everything tinderbox records of one MAC address.
type Machine struct {
	// MAC is lower case, colon separated (52:54:00:12:34:56).
	MAC       string    `json:"mac"`
	State     State     `json:"state"`
	Arch      string    `json:"arch,omitempty"`
	UUID      string    `json:"uuid,omitempty"`
	IP        string    `json:"ip,omitempty"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`
	// Generation counts re-arms; the config token is derived from it, so
	// a reinstall rotates the token.
	Generation uint64  `json:"generation"`
	Events     []Event `json:"events,omitempty"`
}

// Reconcile returns the state a machine should be in given its profile:
// known says whether it has one, install is the profile's mode. A machine
// part-way through install: once keeps its place in the cycle.
func Reconcile(cur State, known bool, install Install) State {
	switch {
	case !known:
		return Discovered
	case install == InstallNever:
		return Local
	case install == InstallAlways:
		return Netboot
	}
	switch cur {
	case Pending, Installing, Installed:
		return cur
	}
	return Pending
}

// ScriptServed applies a network boot (an iPXE script request): a machine
// that was installing has rebooted into the network again after installing,
// so it is now installed. It returns the state the script is chosen by.
func (m *Machine) ScriptServed() State {
	if m.State == Installing {
		m.State = Installed
	}
	return m.State
}

// ConfigServed applies a served machine config: pending becomes installing.
func (m *Machine) ConfigServed() {
	if m.State == Pending {
		m.State = Installing
	}
}

// ConfigAllowed reports whether the machine's config may be served in its
// state: only while it is to be installed or netbooted.
func (m *Machine) ConfigAllowed() bool {
	switch m.State {
	case Pending, Installing, Netboot:
		return true
	}
	return false
}

// Reinstall re-arms the machine: back to pending, with a new token.
func (m *Machine) Reinstall() {
	m.State = Pending
	m.Generation++
}

// LastEvent returns the newest event of kind k, if any.
func (m Machine) LastEvent(k EventKind) (Event, bool) {
	for _, e := range slices.Backward(m.Events) {
		if e.Kind == k {
			return e, true
		}
	}
	return Event{}, false
}
