package bootflow

import (
	"context"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Answer implements proxydhcp.Policy: every PXE client is answered except
// a machine with no profile when the defaults say `unknown: ignore`. A
// client that names its address (ciaddr) is tied to its MAC here, before
// the reply goes out: a fast client's TFTP transfer can end before Sent
// is called.
func (f *Flow) Answer(_ context.Context, c proxydhcp.Client) (proxydhcp.Verdict, error) {
	mac, err := machine.MACFromHardwareAddr(c.MAC)
	if err != nil {
		return proxydhcp.Verdict{}, err
	}
	_, known := f.opts.Profiles.Machine(mac)
	if !known && f.opts.Profiles.Unknown() == machine.UnknownIgnore {
		return proxydhcp.Verdict{Reason: "no profile, and unknown machines are ignored"}, nil
	}
	if c.IP != nil {
		f.learnIP(c.IP.String(), mac)
	}
	return proxydhcp.Verdict{Answer: true}, nil
}

// Sent implements proxydhcp.Recorder: the machine is recorded (an unknown
// one as discovered) with its arch, UUID and IP, and the offer or ack in
// its event log.
func (f *Flow) Sent(_ context.Context, s proxydhcp.Sent) {
	mac, err := machine.MACFromHardwareAddr(s.Client.MAC)
	if err != nil {
		f.log.Error("state: DHCP reply to a client without a MAC", "chaddr", s.Client.MAC, "err", err)
		return
	}
	prof, known := f.opts.Profiles.Machine(mac)
	ip := ""
	if s.Client.IP != nil {
		ip = s.Client.IP.String()
		f.learnIP(ip, mac)
	}
	kind := "offer"
	if s.Type == dhcpv4.MessageTypeAck {
		kind = "ack"
	}
	detail := kind + " " + s.File
	if s.Client.IPXE {
		detail = "iPXE " + detail
	}
	if _, err := f.opts.Store.Update(mac, func(m *state.Machine, _ bool) error {
		m.State = state.Reconcile(m.State, known, prof.Install)
		if a := archOfClass(s.Client.Class); a != "" {
			m.Arch = a
		}
		if s.Client.UUID != "" {
			m.UUID = s.Client.UUID
		}
		if ip != "" {
			m.IP = ip
		}
		m.Events = append(m.Events, f.opts.Store.Event(machine.EventDHCPOffer, detail, 0))
		return nil
	}); err != nil {
		f.log.Error("state: record DHCP reply", "mac", mac, "err", err)
		return
	}
	f.steps.WithLabelValues("dhcp", kind).Inc()
}

// Observed implements proxydhcp.Observer: a PXE client confirming the
// router's lease names the address it will use, so TFTP and asset
// transfers from it are attributed to the right machine.
func (f *Flow) Observed(_ context.Context, c proxydhcp.Client) {
	if mac, err := machine.MACFromHardwareAddr(c.MAC); err == nil {
		f.learnIP(c.RequestedIP.String(), mac)
	}
}

// archOfClass maps proxydhcp's client class to a Talos arch; "" for
// classes Talos has no image for.
func archOfClass(class string) machine.Arch {
	switch strings.TrimSuffix(class, "-http") {
	case "bios", "efi-x64":
		return machine.ArchAMD64
	case "efi-arm64":
		return machine.ArchARM64
	}
	return ""
}
