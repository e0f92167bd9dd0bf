//go:build linux

package proxydhcp

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/internal/ifaddr"
	"github.com/tinderbox-boot/tinderbox/internal/proxydhcp/proxydhcptest"
)

// nopRecorder takes every reply and keeps nothing.
type nopRecorder struct{}

func (nopRecorder) DHCPSent(context.Context, Sent) {}

// BenchmarkServeDiscover is the responder's whole reply path over a
// loopback socket, one DISCOVER at a time from 1000 MACs: the read, the
// decision (the interface's address from an ifaddr.Table, as tinderbox
// runs), the reply written, the metric counted, the Info line
// formatted (written to io.Discard) and the Recorder called. Its
// allocs/op is what each reply costs the garbage collector.
func BenchmarkServeDiscover(b *testing.B) {
	conn, err := Listen(b.Context(), "proxyDHCP", "", 0)
	if err != nil {
		b.Fatal(err)
	}
	ifs, err := ifaddr.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ifs.Close() })
	srv := New(Options{
		Interfaces: ifs,
		Config:     Config{Advertise: netip.MustParseAddr("127.0.0.1"), HTTPPort: 8080},
		Recorder:   nopRecorder{},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:    NewMetrics(prometheus.NewRegistry()),
	})
	proxydhcptest.Serve(b, func(ctx context.Context) error { return srv.Serve(ctx, conn) })
	cli, err := net.ListenUDP("udp4", &net.UDPAddr{IP: loopback})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cli.Close() })
	to := &net.UDPAddr{IP: loopback, Port: conn.LocalAddr().(*net.UDPAddr).Port}
	const macs = 1000
	pkts := make([][]byte, macs)
	for i := range pkts {
		mac := net.HardwareAddr{0x52, 0x54, 0x02, 0, byte(i >> 8), byte(i)}
		pkts[i] = packet(b, dhcpv4.MessageTypeDiscover, append(firmware(7), dhcpv4.WithHwAddr(mac))...).ToBytes()
	}
	buf := make([]byte, 1500)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		proxydhcptest.Exchange(b, cli, to, pkts[i%macs], buf, i)
		i++
	}
}
