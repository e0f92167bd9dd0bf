package bootflow

import (
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
	"net"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp"
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
			hw := tt.mac.HardwareAddr()
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
	hw := macUnknown.HardwareAddr()
	e.flow.Sent(t.Context(), proxydhcp.Sent{
		Client: proxydhcp.Client{MAC: hw, Class: "efi-x64", UUID: "8d5ae0f7-0000-4000-8000-000000000001"},
		Type:   dhcpv4.MessageTypeOffer, File: "ipxe.efi",
	})
	e.flow.Sent(t.Context(), proxydhcp.Sent{
		Client: proxydhcp.Client{MAC: hw, Class: "efi-x64", IP: net.IPv4(192, 0, 2, 77)},
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

	hw = macOnce.HardwareAddr()
	e.flow.Sent(t.Context(), proxydhcp.Sent{Client: proxydhcp.Client{MAC: hw, Class: "bios", IPXE: true}, Type: dhcpv4.MessageTypeOffer, File: "http://h/boot.ipxe"})
	if m := e.machine(t, macOnce); m.State != machine.Pending || m.Events[0].Detail != "iPXE offer http://h/boot.ipxe" {
		t.Errorf("known machine after iPXE offer: got %+v", m)
	}
}

func TestArchOfClass(t *testing.T) {
	for class, want := range map[string]machine.Arch{
		"bios": "amd64", "efi-x64": "amd64", "efi-x64-http": "amd64", "efi-arm64": "arm64",
		"efi-arm64-http": "arm64", "efi-ia32": "", "efi-arm32": "", "other": "",
	} {
		if got := archOfClass(class); got != want {
			t.Errorf("archOfClass(%q) = %q, want %q", class, got, want)
		}
	}
}

func TestObservedLeaseTiesIPToMAC(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	hw := macOnce.HardwareAddr()
	e.flow.Observed(t.Context(), proxydhcp.Client{MAC: hw, RequestedIP: net.IPv4(192, 0, 2, 90)})
	if mac, ok := e.flow.MACOf("192.0.2.90"); !ok || mac != macOnce {
		t.Errorf("MACOf(192.0.2.90) = %q %v, want %s", mac, ok, macOnce)
	}
}

// TestAnswerTiesIPBeforeReply: the address is learnt when the client is
// answered, before Sent, so a transfer racing the recorder is attributed;
// an ignored client's address is not.
func TestAnswerTiesIPBeforeReply(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownIgnore, nil)
	known := macOnce.HardwareAddr()
	ignored := macUnknown.HardwareAddr()
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
