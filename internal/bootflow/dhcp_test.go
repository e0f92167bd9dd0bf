package bootflow

import (
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func TestDHCPPolicy(t *testing.T) {
	tests := []struct {
		name   string
		policy machine.Unknown
		mac    machine.MAC
		want   bool
	}{
		{"known, ignore policy", machine.UnknownIgnore, macOnce, true},
		{"unknown, ignore policy", machine.UnknownIgnore, macUnknown, false},
		{"unknown, maintenance", machine.UnknownMaintenance, macUnknown, true},
		{"unknown, local", machine.UnknownLocal, macUnknown, true},
		{"never installs, still answered", machine.UnknownIgnore, macNever, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "exit", tt.policy, nil)
			hw := tt.mac
			v, err := e.flow.Answer(t.Context(), proxydhcp.Client{MAC: hw})
			if err != nil {
				t.Fatal(err)
			}
			if v.Answer != tt.want || (!v.Answer && v.Reason == "") {
				t.Errorf("got %+v, want answer=%v (with a reason when not)", v, tt.want)
			}
		})
	}
}

func TestDHCPSentRecords(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	hw := macUnknown
	e.flow.DHCPSent(t.Context(), proxydhcp.Sent{
		Client: proxydhcp.Client{MAC: hw, Firmware: machine.FirmwareEFIX64, UUID: "8d5ae0f7-0000-4000-8000-000000000001"},
		Type:   dhcpv4.MessageTypeOffer, File: "ipxe.efi",
	})
	e.flow.DHCPSent(t.Context(), proxydhcp.Sent{
		Client: proxydhcp.Client{MAC: hw, Firmware: machine.FirmwareEFIX64, IP: net.IPv4(192, 0, 2, 77)},
		Type:   dhcpv4.MessageTypeAck, File: "ipxe.efi",
	})
	m := e.machine(t, macUnknown)
	if m.State != machine.Discovered || m.Arch != "amd64" || m.UUID != "8d5ae0f7-0000-4000-8000-000000000001" || m.IP != "192.0.2.77" {
		t.Errorf("after two replies: got %+v", m)
	}
	if len(m.Events) != 2 || m.Events[0].Detail != "offer ipxe.efi" || m.Events[1].Detail != "ack ipxe.efi" {
		t.Errorf("events: got %+v", m.Events)
	}
	if mac, ok := e.flow.MACOf("192.0.2.77"); !ok || mac != macUnknown {
		t.Errorf("IP not learnt from the ack: got %q %v", mac, ok)
	}

	hw = macOnce
	e.flow.DHCPSent(t.Context(), proxydhcp.Sent{Client: proxydhcp.Client{MAC: hw, Firmware: machine.FirmwareBIOS, IPXE: true}, Type: dhcpv4.MessageTypeOffer, File: "http://h/boot.ipxe"})
	if m := e.machine(t, macOnce); m.State != machine.Pending || m.Events[0].Detail != "iPXE offer http://h/boot.ipxe" {
		t.Errorf("known machine after iPXE offer: got %+v", m)
	}
}

// TestDHCPSentRecordsArch: the Talos arch recorded is the client
// firmware's, HTTP boot or not; firmware Talos has no image for leaves the
// arch a machine already has.
func TestDHCPSentRecordsArch(t *testing.T) {
	tests := []struct {
		name     string
		firmware machine.Firmware
		http     bool
		want     machine.Arch
	}{
		{"bios", machine.FirmwareBIOS, false, "amd64"},
		{"efi-x64", machine.FirmwareEFIX64, false, "amd64"},
		{"efi-x64-http", machine.FirmwareEFIX64, true, "amd64"},
		{"efi-arm64", machine.FirmwareEFIARM64, false, "arm64"},
		{"efi-arm64-http", machine.FirmwareEFIARM64, true, "arm64"},
		{"efi-ia32 keeps the arch", machine.FirmwareEFIIA32, false, "amd64"},
		{"efi-arm32 keeps the arch", machine.FirmwareEFIARM32, false, "amd64"},
		{"other keeps the arch", machine.FirmwareOther, false, "amd64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
			hw := macUnknown
			e.flow.DHCPSent(t.Context(), proxydhcp.Sent{Client: proxydhcp.Client{MAC: hw, Firmware: machine.FirmwareBIOS}, Type: dhcpv4.MessageTypeOffer, File: "undionly.kpxe"})
			e.flow.DHCPSent(t.Context(), proxydhcp.Sent{Client: proxydhcp.Client{MAC: hw, Firmware: tt.firmware, HTTPBoot: tt.http}, Type: dhcpv4.MessageTypeOffer, File: "f"})
			if m := e.machine(t, macUnknown); m.Arch != tt.want {
				t.Errorf("got arch %q, want %q", m.Arch, tt.want)
			}
		})
	}
}

// TestNoMACNotRecorded: a client without an Ethernet MAC (zero) is
// answered as a machine with no profile, and nothing about it is recorded
// or tied to its address.
func TestNoMACNotRecorded(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	ip := net.IPv4(192, 0, 2, 93)
	if v, err := e.flow.Answer(t.Context(), proxydhcp.Client{IP: ip}); err != nil || !v.Answer {
		t.Fatalf("got %+v %v, want an answer", v, err)
	}
	e.flow.DHCPSent(t.Context(), proxydhcp.Sent{Client: proxydhcp.Client{IP: ip}, Type: dhcpv4.MessageTypeOffer, File: "ipxe.efi"})
	e.flow.DHCPObserved(t.Context(), proxydhcp.Client{RequestedIP: ip})
	if mac, ok := e.flow.MACOf(ip.String()); ok {
		t.Errorf("address tied to %q, want to nothing", mac)
	}
	if _, ok, _ := e.store.Get(machine.MAC{}); ok {
		t.Error("a record was created for the zero MAC")
	}
}

func TestObservedLeaseTiesIPToMAC(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	hw := macOnce
	e.flow.DHCPObserved(t.Context(), proxydhcp.Client{MAC: hw, RequestedIP: net.IPv4(192, 0, 2, 90)})
	if mac, ok := e.flow.MACOf("192.0.2.90"); !ok || mac != macOnce {
		t.Errorf("MACOf(192.0.2.90) = %q %v, want %s", mac, ok, macOnce)
	}
}

// TestAnswerTiesIPBeforeReply: the address is learnt when the client is
// answered, before Sent, so a transfer racing the recorder is attributed;
// an ignored client's address is not.
func TestAnswerTiesIPBeforeReply(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownIgnore, nil)
	known := macOnce
	ignored := macUnknown
	if _, err := e.flow.Answer(t.Context(), proxydhcp.Client{MAC: known, IP: net.IPv4(192, 0, 2, 91)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.flow.Answer(t.Context(), proxydhcp.Client{MAC: ignored, IP: net.IPv4(192, 0, 2, 92)}); err != nil {
		t.Fatal(err)
	}
	if mac, ok := e.flow.MACOf("192.0.2.91"); !ok || mac != macOnce {
		t.Errorf("MACOf(192.0.2.91) = %q %v, want %s", mac, ok, macOnce)
	}
	if mac, ok := e.flow.MACOf("192.0.2.92"); ok {
		t.Errorf("an ignored client's address was learnt (%s)", mac)
	}
}
