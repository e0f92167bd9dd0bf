package ifaddr

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/netnstest"
)

// TestTableFollowsChanges makes a veth link in a namespace of its own and
// checks that a table opened there follows its addresses, MTU and removal,
// and finds a link created a moment before it is asked.
func TestTableFollowsChanges(t *testing.T) {
	ns := netnstest.New(t)
	var (
		tbl *Table
		err error
	)
	netnstest.Run(t, ns, func() { tbl, err = New() })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })

	index := func(name string) int {
		t.Helper()
		var (
			ifi *net.Interface
			err error
		)
		netnstest.Run(t, ns, func() { ifi, err = net.InterfaceByName(name) })
		if err != nil {
			t.Fatalf("interface %s: %v", name, err)
		}
		return ifi.Index
	}
	// A link created after the table: found at once, by the refresh a
	// miss makes.
	netnstest.IP(t, "-n", ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	idx := index("d0")
	if got, ok := tbl.ByIndex(idx); !ok || got.Name != "d0" {
		t.Fatalf("ByIndex(%d) right after the link was made: got %+v, %v, want d0", idx, got, ok)
	}

	// await waits for the table to show what want accepts, and fails the
	// test if it never does.
	await := func(what string, want func(Interface, bool) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, ok := tbl.ByIndex(idx)
			if want(got, ok) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the table still shows %+v (found: %v)", what, got, ok)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	v4 := func(addrs ...string) func(Interface, bool) bool {
		var want []netip.Addr
		for _, a := range addrs {
			want = append(want, netip.MustParseAddr(a))
		}
		return func(i Interface, ok bool) bool { return ok && slices.Equal(i.IPv4(), want) }
	}
	netnstest.IP(t, "-n", ns, "addr", "add", "10.252.7.1/24", "dev", "d0")
	await("first address added", v4("10.252.7.1"))
	netnstest.IP(t, "-n", ns, "addr", "add", "10.252.8.1/24", "dev", "d0")
	await("second address added", v4("10.252.7.1", "10.252.8.1"))
	netnstest.IP(t, "-n", ns, "addr", "del", "10.252.7.1/24", "dev", "d0")
	await("first address removed", v4("10.252.8.1"))
	netnstest.IP(t, "-n", ns, "link", "set", "d0", "mtu", "1400")
	await("MTU changed", func(i Interface, ok bool) bool { return ok && i.MTU == 1400 })
	netnstest.IP(t, "-n", ns, "link", "del", "d0")
	await("link removed", func(_ Interface, ok bool) bool { return !ok })
}
