package evidence

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/netnstest"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// withLink gives the namespace a link dev0 with 10.78.0.1/16 (one end of
// a veth pair: the dummy driver is not in every kernel).
func withLink(t testing.TB, ns string) {
	t.Helper()
	netnstest.IP(t, "-n", ns, "link", "add", "dev0", "type", "veth", "peer", "name", "dev1")
	netnstest.IP(t, "-n", ns, "addr", "add", "10.78.0.1/16", "dev", "dev0")
	netnstest.IP(t, "-n", ns, "link", "set", "dev1", "up")
	netnstest.IP(t, "-n", ns, "link", "set", "dev0", "up")
}

// kernelIn opens the neighbour table of a fresh namespace with withLink.
func kernelIn(t testing.TB) (*Kernel, string) {
	t.Helper()
	ns := netnstest.New(t)
	withLink(t, ns)
	return openIn(t, ns), ns
}

// openIn opens the neighbour table of the namespace ns, closed at cleanup.
func openIn(t testing.TB, ns string) *Kernel {
	t.Helper()
	var (
		k   *Kernel
		err error
	)
	k, err = OpenKernel(nil, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// eventually polls Lookup until it gives want (ok false: no entry):
// notifications arrive asynchronously.
func eventually(t *testing.T, k *Kernel, ip netip.Addr, want machine.MAC, ok bool) {
	t.Helper()
	for range 300 {
		got, gotOK, err := k.Lookup(ip)
		if err != nil {
			t.Fatal(err)
		}
		if gotOK == ok && got == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	got, gotOK, _ := k.Lookup(ip)
	t.Fatalf("Lookup(%s): got %s %v, want %s %v", ip, got, gotOK, want, ok)
}

// TestKernelFollowsTheTable changes a real neighbour table (in a namespace
// of the test's own) and checks the lookups follow: entries present at
// open, added, changed to another MAC, made unusable, and deleted.
func TestKernelFollowsTheTable(t *testing.T) {
	ns := netnstest.New(t)
	withLink(t, ns)
	netnstest.IP(t, "-n", ns, "neigh", "add", "10.78.0.5", "lladdr", "02:00:00:00:00:05", "dev", "dev0", "nud", "permanent")
	k := openIn(t, ns)

	a5, a6 := netip.MustParseAddr("10.78.0.5"), netip.MustParseAddr("10.78.0.6")
	eventually(t, k, a5, machine.MustParseMAC("02:00:00:00:00:05"), true)
	eventually(t, k, netip.AddrFrom16(a5.As16()), machine.MustParseMAC("02:00:00:00:00:05"), true)

	netnstest.IP(t, "-n", ns, "neigh", "add", "10.78.0.6", "lladdr", "02:00:00:00:00:06", "dev", "dev0", "nud", "reachable")
	eventually(t, k, a6, machine.MustParseMAC("02:00:00:00:00:06"), true)

	// The address moves to another MAC: the old binding must not survive.
	netnstest.IP(t, "-n", ns, "neigh", "change", "10.78.0.6", "lladdr", "02:00:00:00:00:66", "dev", "dev0", "nud", "reachable")
	eventually(t, k, a6, machine.MustParseMAC("02:00:00:00:00:66"), true)

	// An entry that failed resolution binds nothing.
	netnstest.IP(t, "-n", ns, "neigh", "change", "10.78.0.6", "dev", "dev0", "nud", "failed")
	eventually(t, k, a6, machine.MAC{}, false)

	netnstest.IP(t, "-n", ns, "neigh", "del", "10.78.0.5", "dev", "dev0")
	eventually(t, k, a5, machine.MAC{}, false)

	// IPv6 (NDP) entries bind too.
	netnstest.IP(t, "-n", ns, "addr", "add", "fd00:78::1/64", "dev", "dev0")
	netnstest.IP(t, "-n", ns, "neigh", "add", "fd00:78::7", "lladdr", "02:00:00:00:00:07", "dev", "dev0", "nud", "permanent")
	eventually(t, k, netip.MustParseAddr("fd00:78::7"), machine.MustParseMAC("02:00:00:00:00:07"), true)
}

// TestKernelOwnAddressesAreNoNeighbours: a client on this host (loopback,
// or one of the host's own addresses) never gets a neighbour entry, so a
// lookup for it is answered as a miss without waiting for a notification,
// as for a routed client; another address of the link's network still
// waits for one.
func TestKernelOwnAddressesAreNoNeighbours(t *testing.T) {
	k, _ := kernelIn(t)
	tests := []struct {
		name   string
		ip     string
		onLink bool
	}{
		{name: "loopback", ip: "127.0.0.1", onLink: false},
		{name: "loopback IPv6", ip: "::1", onLink: false},
		{name: "the host's own address", ip: "10.78.0.1", onLink: false},
		{name: "a neighbour to be", ip: "10.78.0.2", onLink: true},
		{name: "off every local network", ip: "192.0.2.1", onLink: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.ip)
			if got := k.isOnLink(ip); got != tt.onLink {
				t.Errorf("isOnLink(%s): got %v, want %v", ip, got, tt.onLink)
			}
			if mac, ok, err := k.Lookup(ip); ok || err != nil {
				t.Errorf("Lookup(%s): got %s %v %v, want no entry and no error", ip, mac, ok, err)
			}
		})
	}
}

// BenchmarkKernelLookup measures a lookup in a table of 5000 entries: a
// hit (the address is a neighbour) and a miss for an address off every
// local network (a routed client: no wait, and a dump at most every
// minDumpGap).
func BenchmarkKernelLookup(b *testing.B) {
	k, ns := kernelIn(b)
	var batch strings.Builder
	for i := range 5000 {
		ip := netip.AddrFrom4([4]byte{10, 78, byte(1 + i/250), byte(1 + i%250)})
		fmt.Fprintf(&batch, "neigh add %s lladdr %s dev dev0 nud permanent\n", ip, machine.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)})
	}
	cmd := exec.Command("ip", "-n", ns, "-batch", "-")
	cmd.Stdin = strings.NewReader(batch.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("ip -batch: %v\n%s", err, out)
	}
	hit := netip.AddrFrom4([4]byte{10, 78, 20, 1})
	settle(b, k, hit)
	b.Run("hit", func(b *testing.B) {
		for b.Loop() {
			if _, ok, err := k.Lookup(hit); !ok || err != nil {
				b.Fatal("no entry", err)
			}
		}
	})
	b.Run("miss", func(b *testing.B) {
		miss := netip.MustParseAddr("192.0.2.1")
		for b.Loop() {
			if _, ok, err := k.Lookup(miss); ok || err != nil {
				b.Fatal("entry", err)
			}
		}
	})
}

// settle waits until ip is in the table and the notifications are being
// followed (after a burst that overflowed them, the subscription is made
// again after a pause).
func settle(b testing.TB, k *Kernel, ip netip.Addr) {
	for range 500 {
		if _, ok, _ := k.Lookup(ip); ok && k.Following() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("%s not in the table, or notifications not followed", ip)
}
