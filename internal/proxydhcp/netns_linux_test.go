package proxydhcp

import (
	"net"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"github.com/tinderbox-boot/tinderbox/internal/ifaddr"
	"github.com/tinderbox-boot/tinderbox/internal/netnstest"
)

// TestServerFollowsAddressChanges runs the responder in a namespace of its
// own, with an interface table, behind a veth pair whose far end (another
// namespace) sends DISCOVERs to the subnet's broadcast address: the reply
// names the interface's address (siaddr), and after that address is
// replaced, the new one.
func TestServerFollowsAddressChanges(t *testing.T) {
	srvNS, cliNS := netnstest.New(t), netnstest.New(t)
	netnstest.IP(t, "-n", srvNS, "link", "add", "d0", "type", "veth", "peer", "name", "d1", "netns", cliNS)
	netnstest.IP(t, "-n", srvNS, "addr", "add", "10.252.9.1/24", "dev", "d0")
	netnstest.IP(t, "-n", cliNS, "addr", "add", "10.252.9.100/24", "dev", "d1")
	netnstest.IP(t, "-n", srvNS, "link", "set", "d0", "up")
	netnstest.IP(t, "-n", cliNS, "link", "set", "d1", "up")

	var (
		tbl  *ifaddr.Table
		conn *net.UDPConn
		cli  *net.UDPConn
		err  error
	)
	netnstest.Run(t, srvNS, func() {
		if tbl, err = ifaddr.New(); err == nil {
			conn, err = Listen(t.Context(), "proxyDHCP", "", 0)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	netnstest.Run(t, cliNS, func() { cli, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 252, 9, 100)}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	srv := New(Options{Config: Config{HTTPPort: 8080}, Interfaces: tbl})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(t.Context(), conn) }()
	t.Cleanup(func() {
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	bcast := &net.UDPAddr{IP: net.IPv4(10, 252, 9, 255), Port: conn.LocalAddr().(*net.UDPAddr).Port}
	// siaddr sends a DISCOVER and returns the reply's server address,
	// sending it again when no reply comes within 2 s, as firmware does
	// (a reply may be lost while the address changes, or on a busy host),
	// up to 5 times.
	siaddr := func() net.IP {
		t.Helper()
		buf := make([]byte, 1500)
		var err error
		for range 5 {
			p := packet(t, dhcpv4.MessageTypeDiscover, firmware(7)...)
			if _, err := cli.WriteTo(p.ToBytes(), bcast); err != nil {
				t.Fatal(err)
			}
			if err := cli.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
				t.Fatal(err)
			}
			var n int
			if n, err = cli.Read(buf); err != nil {
				continue
			}
			r, err := dhcpv4.FromBytes(buf[:n])
			if err != nil {
				t.Fatalf("reply: %v", err)
			}
			return r.ServerIPAddr
		}
		t.Fatalf("no reply to 5 DISCOVERs: %v", err)
		return nil
	}
	if got, want := siaddr(), net.IPv4(10, 252, 9, 1); !got.Equal(want) {
		t.Fatalf("got siaddr %s, want %s", got, want)
	}
	// Removing a primary address removes its subnet's secondaries too
	// (promote_secondaries is off by default): remove first, then add.
	netnstest.IP(t, "-n", srvNS, "addr", "del", "10.252.9.1/24", "dev", "d0")
	netnstest.IP(t, "-n", srvNS, "addr", "add", "10.252.9.2/24", "dev", "d0")
	want := net.IPv4(10, 252, 9, 2)
	deadline := time.Now().Add(10 * time.Second)
	for got := siaddr(); !got.Equal(want); got = siaddr() {
		if time.Now().After(deadline) {
			t.Fatalf("after the address changed: got siaddr %s, want %s", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
