package evidence

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

type table struct {
	mu  sync.Mutex
	m   map[netip.Addr]machine.MAC
	err error
}

func (t *table) Lookup(ip netip.Addr) (machine.MAC, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	mac, ok := t.m[ip]
	return mac, ok, t.err
}

var (
	macA   = machine.MustParseMAC("52:54:00:00:00:0a")
	macB   = machine.MustParseMAC("52:54:00:00:00:0b")
	local  = netip.MustParseAddr("192.168.1.11")
	remote = netip.MustParseAddr("10.20.0.7")
	router = netip.MustParseAddr("10.20.0.1")
)

func newBinder(t *testing.T, tab *table, routed ...string) *Binder {
	t.Helper()
	var prefixes []netip.Prefix
	for _, r := range routed {
		prefixes = append(prefixes, netip.MustParsePrefix(r))
	}
	b, err := New(Options{Enabled: true, Neighbours: tab, Routed: prefixes})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheck(t *testing.T) {
	tab := &table{m: map[netip.Addr]machine.MAC{local: macA}}
	b := newBinder(t, tab, "10.20.0.0/24")
	// A DHCP exchange heard on the local segment claims local for macB: it
	// proves nothing, and the neighbour table still decides.
	b.Learn(local, macB, netip.Addr{})
	b.Learn(remote, macA, router)
	b.Learn(netip.MustParseAddr("10.30.0.9"), macA, router)
	b.Learn(netip.MustParseAddr("10.20.0.8"), macB, netip.Addr{})

	tests := []struct {
		name   string
		ip     netip.Addr
		mac    machine.MAC
		via    Via
		owner  machine.MAC
		reason string
	}{
		{"neighbour agrees", local, macA, ViaNeighbour, machine.MAC{}, ""},
		{"neighbour says another MAC", local, macB, ViaNone, macA, "192.168.1.11 is 52:54:00:00:00:0a by the neighbour table"},
		{"IPv4-mapped source", netip.AddrFrom16(local.As16()), macA, ViaNeighbour, machine.MAC{}, ""},
		{"not a neighbour, not routed", netip.MustParseAddr("192.168.1.99"), macA, ViaNone, machine.MAC{}, "not in the neighbour table"},
		{"relayed DHCP agrees", remote, macA, ViaRelayedDHCP, machine.MAC{}, ""},
		{"relayed DHCP says another MAC", remote, macB, ViaNone, macA, "relayed by 10.20.0.1"},
		{"relayed, outside the routed networks", netip.MustParseAddr("10.30.0.9"), macA, ViaNone, machine.MAC{}, "not in binding.routedNetworks"},
		{"routed network, exchange not relayed", netip.MustParseAddr("10.20.0.8"), macB, ViaNone, machine.MAC{}, "no relayed DHCP exchange"},
		{"no source", netip.Addr{}, macA, ViaNone, machine.MAC{}, "no source address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := b.Check(tt.ip, tt.mac)
			if v.Via != tt.via || v.Owner != tt.owner || v.HasOwner != !tt.owner.IsZero() || !strings.Contains(v.Reason, tt.reason) {
				t.Errorf("got %+v, want via %s owner %s reason containing %q", v, tt.via, tt.owner, tt.reason)
			}
			if v.Bound() != (tt.via != ViaNone) || !v.Checked() {
				t.Errorf("Bound %v Checked %v for %+v", v.Bound(), v.Checked(), v)
			}
		})
	}
}

// TestLearnKeepsRelayForSameMAC: a routed PXE client's direct port-4011
// REQUEST between its relayed exchanges keeps its evidence; another MAC's
// exchange for the address does not inherit it.
func TestLearnKeepsRelayForSameMAC(t *testing.T) {
	b := newBinder(t, &table{m: map[netip.Addr]machine.MAC{}}, "10.20.0.0/24")
	b.Learn(remote, macA, router)
	b.Learn(remote, macA, netip.Addr{})
	if v := b.Check(remote, macA); v.Via != ViaRelayedDHCP {
		t.Fatalf("after a direct exchange for the same MAC: got %+v, want via %s", v, ViaRelayedDHCP)
	}
	b.Learn(remote, macB, netip.Addr{})
	for _, mac := range []machine.MAC{macA, macB} {
		if v := b.Check(remote, mac); v.Bound() {
			t.Errorf("after another MAC's direct exchange: %s bound by %+v, want no evidence", mac, v)
		}
	}
}

func TestCheckFailsClosed(t *testing.T) {
	tab := &table{m: map[netip.Addr]machine.MAC{local: macA}, err: errors.New("netlink: no buffer space")}
	b := newBinder(t, tab)
	if v := b.Check(local, macA); v.Bound() || !strings.Contains(v.Reason, "no buffer space") {
		t.Errorf("an unreadable table: got %+v, want not bound, with the error", v)
	}
}

func TestBindingOff(t *testing.T) {
	b, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v := b.Check(local, macA); !v.Bound() || v.Checked() || v.Via != ViaUnchecked {
		t.Errorf("binding off: got %+v", v)
	}
	if _, err := New(Options{Enabled: true}); err == nil {
		t.Error("binding on without a neighbour table: no error")
	}
}

func TestOwner(t *testing.T) {
	tab := &table{m: map[netip.Addr]machine.MAC{local: macA}}
	b, err := New(Options{Enabled: true, Neighbours: tab, MaxLearnt: 2})
	if err != nil {
		t.Fatal(err)
	}
	b.Learn(local, macB, netip.Addr{})
	if mac, ok := b.Owner(local); !ok || mac != macA {
		t.Errorf("Owner prefers the neighbour table: got %s %v", mac, ok)
	}
	b.Learn(remote, macB, router)
	if mac, ok := b.Owner(remote); !ok || mac != macB {
		t.Errorf("Owner falls back to DHCP: got %s %v", mac, ok)
	}
	// Zero MACs and unspecified addresses are never learnt.
	b.Learn(netip.IPv4Unspecified(), macA, netip.Addr{})
	b.Learn(netip.MustParseAddr("10.0.0.1"), machine.MAC{}, netip.Addr{})
	if _, ok := b.Owner(netip.MustParseAddr("10.0.0.1")); ok {
		t.Error("a zero MAC was learnt")
	}
	// The learnt map is bounded: a third address starts it afresh.
	b.Learn(netip.MustParseAddr("10.0.0.2"), macA, netip.Addr{})
	b.Learn(netip.MustParseAddr("10.0.0.3"), macA, netip.Addr{})
	b.mu.Lock()
	n := len(b.learnt)
	b.mu.Unlock()
	if n > 2 {
		t.Errorf("learnt %d addresses, bound is 2", n)
	}
}

func BenchmarkCheck(b *testing.B) {
	tab := &table{m: map[netip.Addr]machine.MAC{}}
	for i := range 5000 {
		tab.m[netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})] = machine.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)}
	}
	bd, err := New(Options{Enabled: true, Neighbours: tab})
	if err != nil {
		b.Fatal(err)
	}
	ip, mac := netip.AddrFrom4([4]byte{10, 0, 7, 7}), machine.MAC{2, 0, 0, 0, 7, 7}
	for b.Loop() {
		if !bd.Check(ip, mac).Bound() {
			b.Fatal("not bound")
		}
	}
}
