package main

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pack.ag/tftp"
)

func TestNodeAddressing(t *testing.T) {
	p := netip.MustParsePrefix("10.2.0.0/16")
	tests := []struct {
		name string
		i    int
		ip   string
		mac  string
	}{
		{name: "first", i: 0, ip: "10.2.1.0", mac: "02:00:00:00:00:00"},
		{name: "past a /24", i: 300, ip: "10.2.2.44", mac: "02:00:00:00:01:2c"},
		{name: "5000th", i: 4999, ip: "10.2.20.135", mac: "02:00:00:00:13:87"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nodeAddr(p, tt.i).String(); got != tt.ip {
				t.Errorf("nodeAddr(%d) = %s, want %s", tt.i, got, tt.ip)
			}
			if got := nodeMAC(tt.i).String(); got != tt.mac {
				t.Errorf("nodeMAC(%d) = %s, want %s", tt.i, got, tt.mac)
			}
		})
	}
	if got, want := maxNodes(p), 65536-256-1; got != want {
		t.Errorf("maxNodes(/16) = %d, want %d", got, want)
	}
}

func TestWriteProfiles(t *testing.T) {
	dir := t.TempDir()
	if err := writeProfiles(dir, netip.MustParsePrefix("10.2.0.0/16"), 3); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "machines", "02-00-00-00-00-02.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "hostname: storm-00002\ngroups: [worker, vm]\nvalues:\n  address: 10.2.1.2/16\n"; string(b) != want {
		t.Errorf("profile = %q, want %q", b, want)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "machines", "*.yaml")); len(m) != 3 {
		t.Errorf("%d machine files, want 3", len(m))
	}
}

func TestParseScript(t *testing.T) {
	const s = `#!ipxe
kernel http://10.1.0.1:8080/assets/ab/v1.12.7/kernel-amd64 initrd=initramfs-amd64.xz talos.config=http://10.1.0.1:8080/config/02-00-00-00-00-01?token=abc talos.platform=metal || goto failed
initrd http://10.1.0.1:8080/assets/ab/v1.12.7/initramfs-amd64.xz || goto failed
boot || goto failed
`
	var b bootState
	if err := b.parse(s); err != nil {
		t.Fatal(err)
	}
	if b.kernel != "http://10.1.0.1:8080/assets/ab/v1.12.7/kernel-amd64" || b.initrd != "http://10.1.0.1:8080/assets/ab/v1.12.7/initramfs-amd64.xz" ||
		b.confU != "http://10.1.0.1:8080/config/02-00-00-00-00-01?token=abc" {
		t.Errorf("parse = %+v", b)
	}
	var m bootState
	if err := m.parse("#!ipxe\nkernel http://x/kernel-amd64 talos.platform=metal\ninitrd http://x/initramfs\n"); err == nil {
		t.Error("a maintenance script (no talos.config) parsed as a netboot with a config")
	}
}

// TestTFTPGet fetches files of several sizes from pack.ag/tftp's server
// over loopback: block boundaries, the OACK'd blksize and a missing file.
func TestTFTPGet(t *testing.T) {
	files := map[string][]byte{
		"empty":   {},
		"one":     bytes.Repeat([]byte{1}, 100),
		"exact":   bytes.Repeat([]byte{2}, 2*blksize),
		"ipxe.ef": bytes.Repeat([]byte("iPXE"), 60000),
	}
	srv, err := tftp.NewServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.ReadHandler(tftp.ReadHandlerFunc(func(r tftp.ReadRequest) {
		b, ok := files[r.Name()]
		if !ok {
			r.WriteError(tftp.ErrCodeFileNotFound, "no such file")
			return
		}
		r.WriteSize(int64(len(b)))
		r.Write(b)
	}))
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(conn)
	t.Cleanup(func() { srv.Close() })
	server := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	lo := netip.MustParseAddr("127.0.0.1")

	for name, want := range files {
		t.Run(name, func(t *testing.T) {
			got, resent, err := tftpGet(t.Context(), lo, server, name, 2*time.Second, 2)
			if err != nil {
				t.Fatal(err)
			}
			if got != int64(len(want)) {
				t.Errorf("got %d bytes, want %d (resent %d)", got, len(want), resent)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, _, err := tftpGet(t.Context(), lo, server, "nope", 2*time.Second, 0)
		if err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Errorf("err = %v, want the server's error", err)
		}
	})
}

func TestReportCountsFailuresAndRetries(t *testing.T) {
	r := newReport(3, 2)
	r.add("dhcp", stageResult{d: time.Millisecond, retries: 1}, 0)
	r.add("dhcp", stageResult{d: 3 * time.Millisecond}, 0)
	r.add("dhcp", stageResult{err: errNoAnswer, retries: 3}, 0)
	var out bytes.Buffer
	r.print(&out)
	if r.failed() != 1 {
		t.Errorf("failed = %d, want 1", r.failed())
	}
	for _, want := range []string{"| dhcp | 2 | 1 | 4 | 1.0 | 3.0 | 3.0 |", "first dhcp failure: no answer"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReportCountsOffersTakenPerServer(t *testing.T) {
	a, b := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.3")
	tests := []struct {
		name    string
		servers []netip.Addr
		want    string
		absent  bool
	}{
		{name: "two replicas", servers: []netip.Addr{b, a, a}, want: "firmware offers taken, by server: 10.1.0.1 2, 10.1.0.3 1"},
		{name: "one server", servers: []netip.Addr{a, a}, want: "offers taken", absent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReport(len(tt.servers), 1)
			for _, s := range tt.servers {
				r.followed("firmware", s)
			}
			var out bytes.Buffer
			r.print(&out)
			if got := strings.Contains(out.String(), tt.want); got == tt.absent {
				t.Errorf("report holds %q: %t, want %t:\n%s", tt.want, got, !tt.absent, out.String())
			}
		})
	}
}
