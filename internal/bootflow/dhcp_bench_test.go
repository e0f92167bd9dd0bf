package bootflow

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/tinderbox-boot/tinderbox/internal/ifaddr"
	"github.com/tinderbox-boot/tinderbox/internal/profiles"
	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp"
	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp/proxydhcptest"
	"github.com/tinderbox-boot/tinderbox/internal/state"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// BenchmarkDHCPDiscover is the proxyDHCP reply path as tinderbox runs it:
// the responder on a loopback socket with the boot flow as its Policy,
// Recorder and Observer (the offer recorded through the write queue into
// a real state store), answering PXE DISCOVERs from 1000 MACs (a tenth
// of them with profiles) one at a time, with the interface table
// (interfaces=table, as tinderbox runs) and without (interfaces=kernel:
// two netlink dumps per packet, as before the table). Profile it with
// -cpuprofile to see where a reply's CPU goes.
func BenchmarkDHCPDiscover(b *testing.B) {
	for _, ifs := range []string{"kernel", "table"} {
		b.Run("interfaces="+ifs, func(b *testing.B) { benchDiscover(b, ifs == "table") })
	}
}

func benchDiscover(b *testing.B, table bool) {
	dir := b.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err = os.MkdirTemp("/dev/shm", "tbxbench"); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { os.RemoveAll(dir) })
	}
	store, err := state.Open(dir, state.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	const macs = 1000
	hw := make([]net.HardwareAddr, macs)
	profs := &fakeProfiles{policy: machine.UnknownMaintenance, machines: map[machine.MAC]profiles.Profile{}}
	for i := range hw {
		hw[i] = net.HardwareAddr{0x52, 0x54, 0x01, 0, byte(i >> 8), byte(i)}
		if i%10 == 0 {
			mac, _ := machine.ParseMAC(hw[i].String())
			profs.machines[mac] = profiles.Profile{Hostname: "n", Install: machine.InstallOnce, Talos: profiles.Talos{Version: "v1.12.7", SchematicID: schematic}}
		}
	}
	f := New(Options{BaseURL: "http://127.0.0.1:8080", LocalBoot: "exit", Store: store, Profiles: profs, Cmdlines: fakeCmdlines{}})
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := f.Flush(ctx); err != nil {
			b.Error(err)
		}
	})
	var tbl *ifaddr.Table
	if table {
		if tbl, err = ifaddr.New(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tbl.Close() })
	}
	conn, err := proxydhcp.Listen(b.Context(), "proxyDHCP", "", 0)
	if err != nil {
		b.Fatal(err)
	}
	srv := proxydhcp.New(proxydhcp.Options{
		Config: proxydhcp.Config{HTTPPort: 8080, EFIx64: "snponly.efi"}, Policy: f, Recorder: f, Observer: f, Interfaces: tbl,
	})
	proxydhcptest.Serve(b, func(ctx context.Context) error { return srv.Serve(ctx, conn) })

	cli, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: conn.LocalAddr().(*net.UDPAddr).Port}
	pkts := make([][]byte, macs)
	for i := range pkts {
		p, err := dhcpv4.NewDiscovery(hw[i],
			dhcpv4.WithTransactionID(dhcpv4.TransactionID{0, 0, byte(i >> 8), byte(i)}),
			dhcpv4.WithOption(dhcpv4.OptClassIdentifier("PXEClient:Arch:00007:UNDI:003016")),
			dhcpv4.WithOption(dhcpv4.OptClientArch(iana.EFI_X86_64)),
			dhcpv4.WithGeneric(dhcpv4.OptionClientMachineIdentifier, append([]byte{0}, hw[i][:]...)),
		)
		if err != nil {
			b.Fatal(err)
		}
		pkts[i] = p.ToBytes()
	}
	buf := make([]byte, 1500)
	i := 0
	for b.Loop() {
		proxydhcptest.Exchange(b, cli, to, pkts[i%macs], buf, i)
		i++
	}
}
