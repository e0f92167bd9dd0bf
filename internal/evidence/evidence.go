// Package evidence decides whether a boot HTTP request comes from the
// machine it names (docs/security.md): the request's source address must be
// bound to the machine's MAC by something the machine itself did, not by
// what the request claims.
//
// Two kinds of evidence bind an address to a MAC:
//
//   - The kernel's neighbour table (ARP for IPv4, RFC 826; NDP for IPv6,
//     RFC 4861 §7), read through netlink (RTM_GETNEIGH dumps and RTM_NEWNEIGH
//     notifications). For a client on a directly attached network the
//     kernel had to resolve the source address to a link-layer address to
//     answer the request's TCP handshake, so the table names the Ethernet
//     address that is really at that IP. It is authoritative: when it names
//     another MAC, nothing else can bind the address.
//   - A DHCP exchange forwarded by a relay agent (giaddr set, RFC 2131 §4.1)
//     for an address in one of the configured routed networks. Behind a
//     router the neighbour table holds only the router, so this is the only
//     evidence there; it is as strong as DHCP itself (docs/security.md says
//     what that leaves open).
//
// DHCP exchanges heard on the local segment are also remembered, but only
// to attribute TFTP and asset transfers to a machine's event log: a DHCP
// packet's chaddr is written by its sender and proves nothing.
package evidence

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Neighbours is the kernel's neighbour table as the binder consults it.
// *Kernel implements it on Linux. Implementations must be safe for
// concurrent use.
type Neighbours interface {
	// Lookup returns the link-layer address the table holds for ip in a
	// usable state (reachable, stale, delay, probe or permanent); ok is
	// false when there is none, or when it is not a 6-byte Ethernet
	// address. An error means the table could not be read.
	Lookup(ip netip.Addr) (mac machine.MAC, ok bool, err error)
}

// Via names the evidence that bound a request to its machine.
type Via uint8

// The kinds of evidence.
const (
	// ViaNone: nothing binds the address to the MAC.
	ViaNone Via = iota
	// ViaNeighbour: the kernel's neighbour table.
	ViaNeighbour
	// ViaRelayedDHCP: a relayed DHCP exchange for an address in a routed
	// network.
	ViaRelayedDHCP
	// ViaUnchecked: binding is turned off; nothing was checked.
	ViaUnchecked
)

func (v Via) String() string {
	switch v {
	case ViaNeighbour:
		return "neighbour table"
	case ViaRelayedDHCP:
		return "relayed DHCP"
	case ViaUnchecked:
		return "binding off"
	}
	return "none"
}

// Verdict is what the evidence says of one request.
type Verdict struct {
	// Via is the evidence that bound the address; ViaNone when none did.
	Via Via
	// Owner is the MAC the evidence binds the address to when that is not
	// the MAC asked about; HasOwner says whether it is set.
	Owner    machine.MAC
	HasOwner bool
	// Reason says, for the log, why the address is not bound; empty when
	// it is.
	Reason string
}

// Bound reports whether the request may act for its machine: evidence
// bound it, or binding is off.
func (v Verdict) Bound() bool { return v.Via != ViaNone }

// Checked reports whether evidence was consulted (binding is on).
func (v Verdict) Checked() bool { return v.Via != ViaUnchecked }

// DefaultMaxLearnt bounds the addresses learnt from DHCP: one entry per
// address of a /16 worth of boot networks.
const DefaultMaxLearnt = 1 << 16

// Options configures New.
type Options struct {
	// Enabled turns binding on (config binding.enabled). When false every
	// request is ViaUnchecked and Neighbours may be nil.
	Enabled bool
	// Neighbours is the kernel's neighbour table; required when Enabled.
	Neighbours Neighbours
	// Routed are the networks behind DHCP relays (config
	// binding.routedNetworks) whose relayed DHCP exchanges bind addresses.
	Routed []netip.Prefix
	// MaxLearnt bounds the addresses learnt from DHCP; 0 means
	// DefaultMaxLearnt.
	MaxLearnt int
}

// Binder keeps the evidence and judges requests by it. It is safe for
// concurrent use.
type Binder struct {
	opts Options

	mu     sync.Mutex
	learnt map[netip.Addr]learnt
}

// learnt is what a DHCP exchange said of an address.
type learnt struct {
	mac machine.MAC
	// relay is the relay agent that forwarded the exchange; invalid for
	// an exchange heard on the local segment.
	relay netip.Addr
}

// New returns a Binder. It fails when binding is on without a neighbour
// table.
func New(opts Options) (*Binder, error) {
	if opts.Enabled && opts.Neighbours == nil {
		return nil, errors.New("evidence: binding is on but there is no neighbour table to consult")
	}
	if opts.MaxLearnt <= 0 {
		opts.MaxLearnt = DefaultMaxLearnt
	}
	return &Binder{opts: opts, learnt: map[netip.Addr]learnt{}}, nil
}

// Enabled reports whether binding is on.
func (b *Binder) Enabled() bool { return b.opts.Enabled }

// Learn records that a DHCP exchange tied ip to mac; relay is the relay
// agent that forwarded it (giaddr), or the zero Addr for an exchange heard
// on the local segment. A zero MAC or an invalid ip is ignored.
//
// An unrelayed exchange for the same MAC keeps the relay an earlier one
// was forwarded by: a PXE client behind a relay sends its port-4011
// REQUEST to tinderbox directly (ciaddr set, no giaddr), between its
// relayed exchanges, and must not lose its evidence to it. An exchange
// for another MAC replaces the entry, relay and all.
func (b *Binder) Learn(ip netip.Addr, mac machine.MAC, relay netip.Addr) {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsUnspecified() || mac.IsZero() {
		return
	}
	relay = relay.Unmap()
	b.mu.Lock()
	defer b.mu.Unlock()
	old, ok := b.learnt[ip]
	if !ok && len(b.learnt) >= b.opts.MaxLearnt {
		clear(b.learnt)
	}
	if ok && !relay.IsValid() && old.mac == mac {
		relay = old.relay
	}
	b.learnt[ip] = learnt{mac: mac, relay: relay}
}

// Owner returns the MAC at ip for attributing a transfer to a machine's
// event log: the neighbour table's when binding is on and it has one, else
// the last DHCP exchange's. It is not evidence for secrets or state.
func (b *Binder) Owner(ip netip.Addr) (machine.MAC, bool) {
	ip = ip.Unmap()
	if b.opts.Neighbours != nil {
		if mac, ok, err := b.opts.Neighbours.Lookup(ip); err == nil && ok {
			return mac, true
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.learnt[ip]
	return l.mac, ok
}

// Identify returns the machine at ip for a report that names no MAC (a
// Talos event or log line): the neighbour table's MAC, or for an address
// in a routed network the MAC a relayed DHCP exchange gave it. With binding
// off it is any MAC learnt for ip (ViaUnchecked). via is ViaNone, with the
// reason, when nothing identifies ip.
func (b *Binder) Identify(ip netip.Addr) (mac machine.MAC, via Via, reason string) {
	mac, via, _, reason = b.identify(ip.Unmap())
	return mac, via, reason
}

// identify is Identify with, for a MAC found, the evidence in words ("the
// neighbour table", "a DHCP exchange relayed by 10.20.0.1").
func (b *Binder) identify(ip netip.Addr) (mac machine.MAC, via Via, by, reason string) {
	if !b.opts.Enabled {
		if mac, ok := b.Owner(ip); ok {
			return mac, ViaUnchecked, "binding off", ""
		}
		return machine.MAC{}, ViaNone, "", fmt.Sprintf("no DHCP exchange or script request came from %s", ip)
	}
	if !ip.IsValid() {
		return machine.MAC{}, ViaNone, "", "the request has no source address"
	}
	got, ok, err := b.opts.Neighbours.Lookup(ip)
	switch {
	case err != nil:
		return machine.MAC{}, ViaNone, "", fmt.Sprintf("the neighbour table could not be read: %v", err)
	case ok:
		return got, ViaNeighbour, "the neighbour table", ""
	case !b.routed(ip):
		return machine.MAC{}, ViaNone, "", fmt.Sprintf("%s is not in the neighbour table (not on a local network) and not in binding.routedNetworks", ip)
	}
	b.mu.Lock()
	l, ok := b.learnt[ip]
	b.mu.Unlock()
	if ok && l.relay.IsValid() {
		return l.mac, ViaRelayedDHCP, "a DHCP exchange relayed by " + l.relay.String(), ""
	}
	return machine.MAC{}, ViaNone, "", fmt.Sprintf("no relayed DHCP exchange gave %s to a machine", ip)
}

// Check judges a request from ip that acts for mac: bound when the
// evidence (Identify) names mac at ip.
func (b *Binder) Check(ip netip.Addr, mac machine.MAC) Verdict {
	if !b.opts.Enabled {
		return Verdict{Via: ViaUnchecked}
	}
	ip = ip.Unmap()
	got, via, by, reason := b.identify(ip)
	switch {
	case via == ViaNone:
		return Verdict{Reason: reason}
	case got != mac:
		return Verdict{Owner: got, HasOwner: true, Reason: fmt.Sprintf("%s is %s by %s", ip, got, by)}
	}
	return Verdict{Via: via}
}

func (b *Binder) routed(ip netip.Addr) bool {
	for _, p := range b.opts.Routed {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
