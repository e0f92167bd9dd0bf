package bootflow

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Answer implements proxydhcp.Policy: every PXE client is answered except
// a machine with no profile when the defaults say `unknown: ignore`. A
// client that names its address (ciaddr) is tied to its MAC here, before
// the reply goes out: a fast client's TFTP transfer can end before
// DHCPSent is called. A client without an Ethernet MAC (zero) is treated
// as a machine with no profile and is never tied to an address.
func (f *Flow) Answer(_ context.Context, c proxydhcp.Client) (proxydhcp.Verdict, error) {
	_, known := f.opts.Profiles.Machine(c.MAC)
	if !known && f.opts.Profiles.Unknown() == machine.UnknownIgnore {
		return proxydhcp.Verdict{Reason: "no profile, and unknown machines are ignored"}, nil
	}
	f.learn(c.IP, c)
	return proxydhcp.Verdict{Answer: true}, nil
}

// DHCPSent implements proxydhcp.Recorder: the machine is recorded (an
// unknown one as discovered) with its arch, UUID and IP, and the offer or
// ack in its event log. The record is queued for the background writer
// (Flush), so DHCPSent never waits for the disk and a stuck state write
// never holds a DHCP handler. A reply to a client without an Ethernet MAC
// is not recorded: it has no key in the state store.
func (f *Flow) DHCPSent(_ context.Context, s proxydhcp.Sent) {
	mac := s.Client.MAC
	if mac.IsZero() {
		f.log.Warn("state: DHCP reply to a client without an Ethernet MAC not recorded", "file", s.File)
		return
	}
	prof, known := f.opts.Profiles.Machine(mac)
	ip := ""
	if s.Client.IP != nil {
		ip = s.Client.IP.String()
		f.learn(s.Client.IP, s.Client)
	}
	kind := "offer"
	if s.Type == dhcpv4.MessageTypeAck {
		kind = "ack"
	}
	detail := kind + " " + s.File
	if s.Client.IPXE {
		detail = "iPXE " + detail
	}
	f.q.add(mac, &pendingWrite{
		create: true, reconcile: true, known: known, install: prof.Install,
		seen:   sighted{arch: s.Client.Firmware.Arch(), uuid: canonicalUUID(s.Client.UUID), ip: ip},
		events: []queuedEvent{{ev: f.opts.Store.Event(machine.EventDHCPOffer, detail, 0), what: whatDHCP}},
	})
	f.steps.WithLabelValues("dhcp", kind).Inc()
}

// DHCPObserved implements proxydhcp.Observer: a PXE client confirming
// the router's lease names the address it will use, so TFTP and asset
// transfers from it are attributed to the right machine.
func (f *Flow) DHCPObserved(_ context.Context, c proxydhcp.Client) {
	f.learn(c.RequestedIP, c)
}

// learn remembers that a DHCP exchange tied ip to the client's MAC, and
// through which relay agent, if any.
func (f *Flow) learn(ip net.IP, c proxydhcp.Client) {
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return
	}
	var relay netip.Addr
	if r, ok := netip.AddrFromSlice(c.Relay); ok {
		relay = r.Unmap()
	}
	f.ev.Learn(a, c.MAC, relay)
}

// canonicalUUID returns s as a canonical SMBIOS UUID, or "" when it is not
// one (including the "not set" all-zero and all-FF values).
func canonicalUUID(s string) string {
	if s == "" {
		return "" // ParseUUID's error would be made for nothing
	}
	u, err := machine.ParseUUID(s)
	if err != nil {
		return ""
	}
	return u.String()
}

// canonicalUUIDAs is canonicalUUID(s), answered with known when s is
// known in either case and known is canonical (lower case: the hyphens
// and length are ParseUUID's), so that a machine sending the UUID its
// record holds costs no allocation. Known's bytes, hex digits and
// hyphens, fold to no byte outside ASCII, so s is then ASCII too.
func canonicalUUIDAs(s, known string) string {
	if s != "" && len(s) == len(known) && strings.EqualFold(s, known) && strings.ToLower(known) == known {
		if _, err := machine.ParseUUID(known); err == nil {
			return known
		}
	}
	return canonicalUUID(s)
}
