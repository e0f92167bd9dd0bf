package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tinderbox-boot/tinderbox/internal/bind"
	"github.com/tinderbox-boot/tinderbox/internal/ifaddr"
	"github.com/tinderbox-boot/tinderbox/internal/ipxe"
	"github.com/tinderbox-boot/tinderbox/internal/netnstest"
)

// The test LAN: two namespaces joined by a veth pair with an MTU of 1400.
// The server's end has two addresses of each family, as an interface with
// a keepalived VIP has; the client's end one of each.
const (
	lanMTU     = 1400
	serverIf   = "veth0"
	clientIf   = "veth1"
	addr4a     = "10.99.0.1"
	addr4b     = "10.99.0.2" // secondary: same subnet, added second
	bcast4     = "10.99.0.255"
	client4    = "10.99.0.10"
	addr6a     = "fd99::1"
	addr6b     = "fd99::2"
	client6    = "fd99::10"
	netnsChild = "TINDERBOX_TFTP_NETNS_TEST" // "SERVER-NS,CLIENT-NS" in the child process
)

// lan is the test LAN's namespaces.
type lan struct{ server, client string }

func newLAN(t *testing.T) lan {
	t.Helper()
	l := lan{server: netnstest.New(t), client: netnstest.New(t)}
	netnstest.IP(t, "-n", l.server, "link", "add", serverIf, "type", "veth", "peer", "name", clientIf, "netns", l.client)
	for _, c := range []struct{ ns, dev string }{{l.server, serverIf}, {l.client, clientIf}} {
		netnstest.IP(t, "-n", c.ns, "link", "set", c.dev, "mtu", strconv.Itoa(lanMTU))
	}
	netnstest.IP(t, "-n", l.server, "addr", "add", addr4a+"/24", "dev", serverIf)
	netnstest.IP(t, "-n", l.server, "addr", "add", addr4b+"/24", "dev", serverIf)
	netnstest.IP(t, "-n", l.server, "addr", "add", addr6a+"/64", "dev", serverIf, "nodad")
	netnstest.IP(t, "-n", l.server, "addr", "add", addr6b+"/64", "dev", serverIf, "nodad")
	netnstest.IP(t, "-n", l.client, "addr", "add", client4+"/24", "dev", clientIf)
	netnstest.IP(t, "-n", l.client, "addr", "add", client6+"/64", "dev", clientIf, "nodad")
	netnstest.IP(t, "-n", l.server, "link", "set", serverIf, "up")
	netnstest.IP(t, "-n", l.client, "link", "set", clientIf, "up")
	return l
}

// inServerNamespace runs the calling test again in a child process whose
// every thread is in the server's namespace: the server opens a socket
// per transfer from whichever goroutine runs it, and netnstest.Run moves
// one thread only. It returns the LAN in the child, where the test goes on;
// in the parent it builds the LAN, waits for the child and returns false.
func inServerNamespace(t *testing.T) (lan, bool) {
	t.Helper()
	if v := os.Getenv(netnsChild); v != "" {
		server, client, _ := strings.Cut(v, ",")
		return lan{server: server, client: client}, true
	}
	netnstest.Require(t)
	l := newLAN(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.server, os.Args[0],
		"-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v", "-test.timeout=4m")
	cmd.Env = append(os.Environ(), netnsChild+"="+l.server+","+l.client)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()+" ") {
		t.Fatalf("%s in namespace %s: %v\n%s", t.Name(), l.server, err, out)
	}
	if testing.Verbose() {
		t.Logf("child process:\n%s", out)
	}
	return l, false
}

// kernelSource is the source address the kernel picks in the current
// namespace for a packet to dst when the sender does not choose one.
func kernelSource(t *testing.T, dst string) string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "route", "get", dst).CombinedOutput()
	if err != nil {
		t.Fatalf("ip route get %s: %v\n%s", dst, err, out)
	}
	f := strings.Fields(string(out))
	for i := range f[:len(f)-1] {
		if f[i] == "src" {
			return f[i+1]
		}
	}
	t.Fatalf("ip route get %s: no src in %q", dst, out)
	return ""
}

// clientConn opens a UDP socket in the client's namespace on the given
// address (port 0), with SO_BROADCAST when broadcast is set.
func clientConn(t *testing.T, l lan, addr string, broadcast bool) *net.UDPConn {
	t.Helper()
	lc := net.ListenConfig{}
	if broadcast {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1) }); err != nil {
				return err
			}
			return serr
		}
	}
	var (
		pc  net.PacketConn
		err error
	)
	netnstest.Run(t, l.client, func() { pc, err = lc.ListenPacket(t.Context(), "udp", net.JoinHostPort(addr, "0")) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc.(*net.UDPConn)
}

// listenDevice listens on the wildcard address tied to dev
// (SO_BINDTODEVICE), as proxydhcp's listener is with dhcp.interface.
func listenDevice(t *testing.T, network, dev string) net.PacketConn {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) { serr = unix.BindToDevice(int(fd), dev) }); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(t.Context(), network, ":0")
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// TestReplySourceAndBlksizeOnALAN: on an interface with a primary and a
// secondary address (a keepalived VIP) and an MTU of 1400, a client that
// asks the secondary address hears every OACK, DATA and ERROR packet
// from that address, whichever way the server listens (wildcard IPv4,
// wildcard dual-stack as tftp.listen ":69" binds, wildcard IPv6-only, the
// address itself, wildcard tied to the device); and a blksize asked above
// what one 1400-byte packet carries is lowered to it (IPv4: 1400 - 32,
// IPv6: 1400 - 52), while one below is granted as asked. Before the fix
// the replies came from the primary and the blksize was granted whole.
func TestReplySourceAndBlksizeOnALAN(t *testing.T) {
	l, child := inServerNamespace(t)
	if !child {
		return
	}
	// The servers learn the LAN's MTU and networks from one interface
	// table, as tinderbox's do.
	tbl, err := ifaddr.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tbl.Close() })
	// The address the kernel would answer from unasked is the "primary";
	// the client asks the other one, so that the test proves the choice.
	asked := map[bool]string{}
	for _, fam := range []struct {
		v4         bool
		client     string
		candidates [2]string
	}{{true, client4, [2]string{addr4a, addr4b}}, {false, client6, [2]string{addr6a, addr6b}}} {
		primary := kernelSource(t, fam.client)
		switch primary {
		case fam.candidates[0]:
			asked[fam.v4] = fam.candidates[1]
		case fam.candidates[1]:
			asked[fam.v4] = fam.candidates[0]
		default:
			t.Fatalf("the kernel answers %s from %s, neither of %v", fam.client, primary, fam.candidates)
		}
	}

	listeners := []struct {
		name     string
		families []bool // true: IPv4 clients, false: IPv6
		listen   func(t *testing.T) net.PacketConn
	}{
		{"udp4 wildcard", []bool{true}, func(t *testing.T) net.PacketConn { return listen(t, "udp4", "0.0.0.0:0") }},
		{"dual-stack wildcard as tftp.listen :69", []bool{true, false}, func(t *testing.T) net.PacketConn {
			pc, err := bind.UDP(t.Context(), "TFTP", ":0")
			if err != nil {
				t.Fatal(err)
			}
			return pc
		}},
		{"udp6 wildcard", []bool{false}, func(t *testing.T) net.PacketConn { return listen(t, "udp6", "[::]:0") }},
		{"bound to the asked IPv4 address", []bool{true}, func(t *testing.T) net.PacketConn {
			return listen(t, "udp4", net.JoinHostPort(asked[true], "0"))
		}},
		{"bound to the asked IPv6 address", []bool{false}, func(t *testing.T) net.PacketConn {
			return listen(t, "udp6", net.JoinHostPort(asked[false], "0"))
		}},
		{"wildcard tied to the device", []bool{true, false}, func(t *testing.T) net.PacketConn { return listenDevice(t, "udp", serverIf) }},
	}
	for _, ln := range listeners {
		t.Run(ln.name, func(t *testing.T) {
			pc := ln.listen(t)
			_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
			startOn(t, pc, func(o *Options) { o.Timeout = time.Second; o.Retries = 5; o.Interfaces = tbl })
			for _, v4 := range ln.families {
				client, overhead := client6, dataOverhead6
				if v4 {
					client, overhead = client4, dataOverhead4
				}
				server := netip.MustParseAddr(asked[v4])
				serverPort := netip.AddrPortFrom(server, uint16(mustAtoi(t, port)))
				capped := strconv.Itoa(lanMTU - overhead)
				t.Run(map[bool]string{true: "IPv4", false: "IPv6"}[v4], func(t *testing.T) {
					tests := []struct {
						name        string
						blksize     int // 0: no options
						windowsize  int
						wantBlksize string
					}{
						{"EDK2's blksize 1468 is lowered to the link", 1468, 4, capped},
						{"blksize 65464 is lowered to the link", 65464, 1, capped},
						{"blksize 1000 fits and is granted", 1000, 1, "1000"},
						{"no options: 512-byte blocks", 0, 0, ""},
					}
					for _, tt := range tests {
						t.Run(tt.name, func(t *testing.T) {
							c := &rawClient{t: t, conn: clientConn(t, l, client, false), server: net.UDPAddrFromAddrPort(serverPort)}
							got, _ := c.download(ipxe.BIOS, tt.blksize, tt.windowsize, nil)
							if !bytes.Equal(got, testFiles[ipxe.BIOS]) {
								t.Fatalf("got %d bytes, want %d identical", len(got), len(testFiles[ipxe.BIOS]))
							}
							if tt.wantBlksize != "" && c.oack[optBlksize] != tt.wantBlksize {
								t.Errorf("OACK blksize: got %q, want %q", c.oack[optBlksize], tt.wantBlksize)
							}
							assertFrom(t, c, server, serverPort.Port())
						})
					}
					t.Run("missing file: error from the asked address and the server port", func(t *testing.T) {
						c := &rawClient{t: t, conn: clientConn(t, l, client, false), server: net.UDPAddrFromAddrPort(serverPort)}
						c.request(rrq("nothing.efi", "octet", "blksize", "1468"))
						p := c.mustRecv()
						if code, _ := parseError(p); binary.BigEndian.Uint16(p) != opERROR || code != errFileNotFound {
							t.Fatalf("got %s, want ERROR 1", describe(p))
						}
						if c.from[0] != serverPort {
							t.Errorf("error packet from %s, want %s (the address and port the request went to)", c.from[0], serverPort)
						}
					})
				})
			}
		})
	}

	// Listen reports destinations from the bind on: a request that queues
	// before Serve starts is still answered from the address it asked, and
	// its interface (so its MTU) is known.
	t.Run("request queued before Serve starts", func(t *testing.T) {
		for _, v4 := range []bool{true, false} {
			client, overhead := client6, dataOverhead6
			if v4 {
				client, overhead = client4, dataOverhead4
			}
			pc, err := Listen(t.Context(), ":0")
			if err != nil {
				t.Fatal(err)
			}
			server := netip.MustParseAddr(asked[v4])
			serverPort := netip.AddrPortFrom(server, pc.LocalAddr().(*net.UDPAddr).AddrPort().Port())
			c := &rawClient{t: t, conn: clientConn(t, l, client, false), server: net.UDPAddrFromAddrPort(serverPort)}
			c.request(rrq(ipxe.BIOS, "octet", "blksize", "1468"))
			waitQueued(t, pc)
			startOn(t, pc, func(o *Options) { o.Interfaces = tbl })
			oack := parseOACK(t, c.mustRecv())
			if want := strconv.Itoa(lanMTU - overhead); oack[optBlksize] != want {
				t.Errorf("OACK blksize: got %q, want %q", oack[optBlksize], want)
			}
			assertFrom(t, c, server, serverPort.Port())
			c.send(appendError(nil, errNotDefined, "enough"))
		}
	})

	// A request to the subnet's broadcast address is not answered from
	// that address (no host can reply to it): the kernel picks the source,
	// and the file still arrives.
	t.Run("request to the IPv4 broadcast address", func(t *testing.T) {
		pc := listen(t, "udp4", "0.0.0.0:0")
		_, port, _ := net.SplitHostPort(pc.LocalAddr().String())
		startOn(t, pc, func(o *Options) { o.Timeout = time.Second; o.Retries = 5; o.Interfaces = tbl })
		c := &rawClient{t: t, conn: clientConn(t, l, client4, true), server: &net.UDPAddr{IP: net.ParseIP(bcast4), Port: mustAtoi(t, port)}}
		got, _ := c.download(ipxe.BIOS, 1468, 1, nil)
		if !bytes.Equal(got, testFiles[ipxe.BIOS]) {
			t.Fatalf("got %d bytes, want %d identical", len(got), len(testFiles[ipxe.BIOS]))
		}
		primary := netip.MustParseAddr(kernelSource(t, client4))
		for i, from := range c.from {
			if from.Addr() != primary {
				t.Fatalf("packet %d from %s, want %s (the kernel's choice, not the broadcast address)", i, from, primary)
			}
		}
	})
}

// assertFrom checks that every packet c received came from addr, and
// none from the server port (the transfer has a port of its own).
func assertFrom(t *testing.T, c *rawClient, addr netip.Addr, serverPort uint16) {
	t.Helper()
	if len(c.from) == 0 {
		t.Fatal("no packets received")
	}
	for i, from := range c.from {
		if from.Addr() != addr || from.Port() == serverPort {
			t.Fatalf("packet %d of %d from %s, want %s with a port other than %d", i+1, len(c.from), from, addr, serverPort)
		}
	}
	for _, from := range c.from[1:] {
		if from != c.from[0] {
			t.Fatalf("packets from %s and %s: want one transfer port", c.from[0], from)
		}
	}
}

// waitQueued waits until pc has a packet waiting to be read.
func waitQueued(t *testing.T, pc net.PacketConn) {
	t.Helper()
	rc, err := pc.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		var ierr error
		if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil || ierr != nil {
			t.Fatalf("SIOCINQ: %v %v", err, ierr)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the request did not reach the server's socket within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func listen(t *testing.T, network, addr string) net.PacketConn {
	t.Helper()
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	return pc
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("port %q: %v", s, err)
	}
	return n
}
