package tftp

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
)

func TestBlksizeCap(t *testing.T) {
	tests := []struct {
		name       string
		mtu        int
		ipv4       bool
		configured int
		want       int
	}{
		{"Ethernet, IPv4: EDK2's 1468", 1500, true, 0, 1468},
		{"Ethernet, IPv6", 1500, false, 0, 1448},
		{"MTU 1400, IPv4", 1400, true, 0, 1368},
		{"MTU 1400, IPv6", 1400, false, 0, 1348},
		{"jumbo frames", 9000, true, 0, 8968},
		{"loopback: RFC 2348's maximum", 65536, true, 0, maxBlksize},
		{"MTU unknown", 0, true, 0, maxBlksize},
		{"configured below the MTU's", 1500, true, 1024, 1024},
		{"configured above the MTU's", 1500, true, 9000, 1468},
		{"configured, MTU unknown", 0, false, 1200, 1200},
		{"configured above RFC 2348's maximum", 0, true, 70000, maxBlksize},
		{"IPv4's smallest MTU", 68, true, 0, 36},
		{"a link too small for a block: RFC 2348's minimum", 40, true, 0, minBlksize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := blksizeCap(tt.mtu, tt.ipv4, tt.configured); got != tt.want {
				t.Errorf("blksizeCap(%d, %v, %d): got %d, want %d", tt.mtu, tt.ipv4, tt.configured, got, tt.want)
			}
		})
	}
}

func TestReplySource(t *testing.T) {
	lan := []netip.Prefix{
		netip.MustParsePrefix("10.99.0.1/24"),
		netip.MustParsePrefix("10.99.0.2/24"),
		netip.MustParsePrefix("192.0.2.1/24"),
		netip.MustParsePrefix("198.51.100.7/31"),
		netip.MustParsePrefix("fd99::1/64"),
	}
	tests := []struct {
		name string
		dst  string // "" for unknown
		want string // "" for the kernel's choice
	}{
		{"primary", "10.99.0.1", "10.99.0.1"},
		{"secondary (a VIP)", "10.99.0.2", "10.99.0.2"},
		{"IPv6", "fd99::2", "fd99::2"},
		{"IPv6 link-local", "fe80::1", "fe80::1"},
		{"loopback", "127.0.0.1", "127.0.0.1"},
		{"unknown", "", ""},
		{"unspecified", "0.0.0.0", ""},
		{"limited broadcast", "255.255.255.255", ""},
		{"subnet broadcast", "10.99.0.255", ""},
		{"broadcast of a second network", "192.0.2.255", ""},
		{"a /31 has no broadcast (RFC 3021)", "198.51.100.7", "198.51.100.7"},
		{"multicast", "224.0.0.1", ""},
		{"IPv6 multicast", "ff02::1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dst, want netip.Addr
			if tt.dst != "" {
				dst = netip.MustParseAddr(tt.dst)
			}
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got := replySource(dst, lan); got != want {
				t.Errorf("replySource(%v): got %v, want %v", dst, got, want)
			}
		})
	}
}

func TestTransferAddr(t *testing.T) {
	if got := transferAddr(netip.Addr{}, 3); got != nil {
		t.Errorf("no source: got %v, want nil (any address)", got)
	}
	if got := transferAddr(netip.MustParseAddr("10.99.0.2"), 3); got.String() != "10.99.0.2:0" {
		t.Errorf("IPv4: got %v, want 10.99.0.2:0", got)
	}
	if got := transferAddr(netip.MustParseAddr("fe80::2"), 3); got.String() != "[fe80::2%3]:0" {
		t.Errorf("link-local: got %v, want [fe80::2%%3]:0", got)
	}
}

// TestBlksizeOnLoopback: loopback's MTU (65536) leaves RFC 2348's whole
// range, and Options.MaxBlksize caps below it; an ask under the cap is
// granted as asked, and a client that asks nothing gets 512-byte blocks.
func TestBlksizeOnLoopback(t *testing.T) {
	tests := []struct {
		name       string
		configured int
		ask        int // 0: no options
		want       int
	}{
		{"65464 fits loopback", 0, 65464, 65464},
		{"EDK2's 1468", 0, 1468, 1468},
		{"configured cap lowers 1468", 1024, 1468, 1024},
		{"configured cap lowers 65464", 1024, 65464, 1024},
		{"under the configured cap", 1024, 600, 600},
		{"no options under a cap", 1024, 0, defaultBlksize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := start(t, func(o *Options) { o.MaxBlksize = tt.configured })
			c := dialRaw(t, f.addr)
			got, _ := c.download(ipxe.BIOS, tt.ask, 0, nil)
			if !bytes.Equal(got, testFiles[ipxe.BIOS]) {
				t.Fatalf("got %d bytes, want %d identical", len(got), len(testFiles[ipxe.BIOS]))
			}
			if tt.ask > 0 && c.oack[optBlksize] != strconv.Itoa(tt.want) {
				t.Errorf("OACK blksize: got %q, want %d", c.oack[optBlksize], tt.want)
			}
			f.waitCount(t, ResultOK, 1)
			ts := f.rec.transfers()
			if len(ts) != 1 || ts[0].Blksize != tt.want {
				t.Errorf("recorded: got %+v, want one transfer with blksize %d", ts, tt.want)
			}
		})
	}
}
