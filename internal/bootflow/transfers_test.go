package bootflow

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tinderbox-boot/tinderbox/internal/cache"
	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/internal/tftp"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

func TestTFTPSent(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	tr := tftp.Transfer{Remote: netip.MustParseAddrPort("[::ffff:192.0.2.80]:2070"), File: "ipxe.efi", Bytes: 1024, Duration: time.Second}
	e.flow.TFTPSent(t.Context(), tr)
	if _, ok, _ := e.store.Get(macOnce); ok {
		t.Fatal("a transfer from an unknown address created a record")
	}
	if got := testutil.ToFloat64(e.flow.steps.WithLabelValues("tftp", "unattributed")); got != 1 {
		t.Errorf("unattributed transfers: got %v, want 1", got)
	}
	e.flow.ev.Learn(netip.MustParseAddr("192.0.2.80"), macOnce, netip.Addr{})
	seed(t, e, macOnce)
	e.flow.TFTPSent(t.Context(), tr)
	m := e.machine(t, macOnce)
	if ev, ok := m.LastEvent(machine.EventTFTP); !ok || ev.Detail != "ipxe.efi" || ev.Bytes != 1024 {
		t.Errorf("tftp event: got %+v %v", ev, ok)
	}
}

func TestAssetSent(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	e.flow.ev.Learn(netip.MustParseAddr("192.0.2.80"), macOnce, netip.Addr{})
	seed(t, e, macOnce)
	remote := netip.MustParseAddr("192.0.2.80")
	key := cache.Key{Schematic: schematic, Version: "v1.12.7", File: "kernel-amd64"}
	e.flow.AssetSent(t.Context(), cache.Sent{Remote: remote, Key: key, Bytes: 100})
	if _, ok := e.machine(t, macOnce).LastEvent(machine.EventKernel); ok {
		t.Error("a partial transfer was recorded")
	}
	e.flow.AssetSent(t.Context(), cache.Sent{Remote: remote, Key: key, Bytes: 8 << 20, Complete: true})
	ev, ok := e.machine(t, macOnce).LastEvent(machine.EventKernel)
	if !ok || ev.Detail != "kernel-amd64" || ev.Bytes != 8<<20 {
		t.Errorf("kernel event: got %+v %v", ev, ok)
	}
	// Each asset's event kind is its boot stage, from the factory's file
	// name, not from the event's free-text detail.
	for file, want := range map[string]machine.EventKind{
		"initramfs-arm64.xz": machine.EventInitramfs, "kernel-arm64": machine.EventKernel, "cmdline-metal-amd64": machine.EventAsset,
	} {
		k := cache.Key{Schematic: schematic, Version: "v1.12.7", File: file}
		e.flow.AssetSent(t.Context(), cache.Sent{Remote: remote, Key: k, Bytes: 3, Complete: true})
		if ev, ok := e.machine(t, macOnce).LastEvent(want); !ok || ev.Detail != file {
			t.Errorf("%s: %s event: got %+v %v", file, want, ev, ok)
		}
	}
	e.flow.AssetSent(t.Context(), cache.Sent{Remote: netip.MustParseAddr("192.0.2.81"), Key: key, Bytes: 1, Complete: true})
	if got := testutil.ToFloat64(e.flow.steps.WithLabelValues("asset", "unattributed")); got != 1 {
		t.Errorf("unattributed assets: got %v, want 1", got)
	}
}

// seed makes a record for mac, as its DHCP exchange would.
func seed(t *testing.T, e *env, mac machine.MAC) {
	t.Helper()
	if _, err := e.store.Update(mac, func(m *state.Machine, _ bool) error {
		m.State = machine.Pending
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestTFTPBeforeDHCPRecorded: a fast client's TFTP transfer can end before
// its DHCP reply is recorded (Answer tied its address first): the transfer
// still lands on its timeline, in a record its profile's state reconciles.
func TestTFTPBeforeDHCPRecorded(t *testing.T) {
	e := newEnv(t, "exit", machine.UnknownMaintenance, nil)
	ip := netip.MustParseAddr("192.0.2.81")
	if v, err := e.flow.Answer(t.Context(), proxydhcp.Client{MAC: macOnce, IP: ip.AsSlice()}); err != nil || !v.Answer {
		t.Fatalf("Answer: %+v %v", v, err)
	}
	e.flow.TFTPSent(t.Context(), tftp.Transfer{Remote: netip.AddrPortFrom(ip, 2070), File: "ipxe.efi", Bytes: 7})
	m := e.machine(t, macOnce)
	if ev, ok := m.LastEvent(machine.EventTFTP); !ok || ev.Detail != "ipxe.efi" || m.State != machine.Pending {
		t.Errorf("got state %s, tftp event %+v %v", m.State, ev, ok)
	}
}
