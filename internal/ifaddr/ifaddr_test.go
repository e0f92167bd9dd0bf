package ifaddr

import (
	"net"
	"net/netip"
	"slices"
	"testing"
)

func TestPrefix(t *testing.T) {
	tests := []struct {
		name string
		ipn  *net.IPNet
		want string // "" for none
	}{
		{"IPv4", &net.IPNet{IP: net.IPv4(10, 99, 0, 1).To4(), Mask: net.CIDRMask(24, 32)}, "10.99.0.1/24"},
		{"IPv4 in 16 bytes", &net.IPNet{IP: net.IPv4(10, 99, 0, 1), Mask: net.CIDRMask(24, 32)}, "10.99.0.1/24"},
		{"IPv4 with a 16-byte mask", &net.IPNet{IP: net.ParseIP("192.0.2.1"), Mask: net.CIDRMask(120, 128)}, "192.0.2.1/24"},
		{"4-byte IPv4 with a 16-byte mask", &net.IPNet{IP: net.IPv4(192, 0, 2, 1).To4(), Mask: net.CIDRMask(120, 128)}, "192.0.2.1/24"},
		{"IPv6", &net.IPNet{IP: net.ParseIP("fd99::1"), Mask: net.CIDRMask(64, 128)}, "fd99::1/64"},
		{"non-contiguous mask", &net.IPNet{IP: net.IPv4(10, 0, 0, 1).To4(), Mask: net.IPv4Mask(255, 0, 255, 0)}, ""},
		{"no address", &net.IPNet{Mask: net.CIDRMask(24, 32)}, ""},
		{"IPv4 with a short 16-byte mask", &net.IPNet{IP: net.IPv4(10, 0, 0, 1), Mask: net.CIDRMask(8, 128)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Prefix(tt.ipn)
			if tt.want == "" {
				if ok {
					t.Fatalf("got %v, want none", got)
				}
				return
			}
			if want := netip.MustParsePrefix(tt.want); !ok || got != want {
				t.Fatalf("got %v, %v, want %v", got, ok, want)
			}
		})
	}
}

func TestIPv4(t *testing.T) {
	ifc := Interface{Addrs: []netip.Prefix{
		netip.MustParsePrefix("fd99::1/64"), netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("10.0.0.9/32"),
	}}
	want := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.9")}
	if got := ifc.IPv4(); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestTableAgreesWithKernel compares the table (and a nil table) with the
// standard library's view of the host's interfaces.
func TestTableAgreesWithKernel(t *testing.T) {
	ifs, err := net.Interfaces()
	if err != nil || len(ifs) == 0 {
		t.Skipf("no interfaces to compare: %v", err)
	}
	tbl, err := New()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range []struct {
		name string
		tbl  *Table
	}{{"table", tbl}, {"nil", nil}} {
		t.Run(tb.name, func(t *testing.T) {
			for _, ifi := range ifs {
				got, ok := tb.tbl.ByIndex(ifi.Index)
				if !ok {
					t.Fatalf("ByIndex(%d) (%s): not found", ifi.Index, ifi.Name)
				}
				if got.Name != ifi.Name || got.MTU != ifi.MTU {
					t.Errorf("ByIndex(%d): got %s mtu %d, want %s mtu %d", ifi.Index, got.Name, got.MTU, ifi.Name, ifi.MTU)
				}
				addrs, _ := ifi.Addrs()
				var want []netip.Prefix
				for _, a := range addrs {
					if p, ok := Prefix(a.(*net.IPNet)); ok {
						want = append(want, p)
					}
				}
				if !slices.Equal(got.Addrs, want) {
					t.Errorf("ByIndex(%d) (%s): got addresses %v, want %v", ifi.Index, ifi.Name, got.Addrs, want)
				}
			}
			if got, ok := tb.tbl.ByIndex(1 << 30); ok {
				t.Errorf("ByIndex of an index no interface has: got %+v", got)
			}
		})
	}
	// Closed, the table still answers, from the kernel.
	if err := tbl.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got, ok := tbl.ByIndex(ifs[0].Index); !ok || got.Name != ifs[0].Name {
		t.Errorf("ByIndex(%d) after Close: got %+v, %v, want %s", ifs[0].Index, got, ok, ifs[0].Name)
	}
}
