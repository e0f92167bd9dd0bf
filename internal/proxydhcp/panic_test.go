//go:build linux

package proxydhcp

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// panicPolicy panics for one MAC and answers every other.
type panicPolicy struct{ mac machine.MAC }

func (p panicPolicy) Answer(_ context.Context, c Client) (Verdict, error) {
	if c.MAC == p.mac {
		panic("policy bug")
	}
	return Verdict{Answer: true}, nil
}

// TestServerRecoversPanic: a Policy that panics on one client's packet
// costs that packet its reply, is counted in tinderbox_panics_total and
// logged once at Error with the stack; the next client is answered.
func TestServerRecoversPanic(t *testing.T) {
	bad := net.HardwareAddr{0x52, 0x54, 0x00, 0xde, 0xad, 0x01}
	reg := prometheus.NewRegistry()
	rig := startServer(t, false, panicPolicy{mac: machine.MAC(bad)}, func(o *Options) { o.Metrics = NewMetrics(reg) })
	for range 2 {
		sendRaw(t, rig.addr, packet(t, dhcpv4.MessageTypeDiscover, append(firmware(7), dhcpv4.WithHwAddr(bad))...).ToBytes())
	}
	waitFor(t, func() bool { return panicsTotal(t, reg) == 2 })

	offer, err := client(t, rig.addr).DiscoverOffer(t.Context(), firmware(7)...)
	if err != nil {
		t.Fatalf("DiscoverOffer after a panic: %v", err)
	}
	if offer.BootFileName != "snponly.efi" {
		t.Errorf("after a panic: got file %q, want snponly.efi", offer.BootFileName)
	}
	logs := rig.log(t)
	if n := strings.Count(logs, `level=ERROR msg="panic recovered: the handler's answer is lost, serving goes on" where=dhcp panic="policy bug"`); n != 1 {
		t.Errorf("got %d Error lines for the panic, want 1 (the repeat at Debug); log:\n%s", n, logs)
	}
	if !strings.Contains(logs, "stack=") {
		t.Errorf("the panic's log line has no stack:\n%s", logs)
	}
}

// panicsTotal is tinderbox_panics_total on reg, summed over its series.
func panicsTotal(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() == "tinderbox_panics_total" {
			for _, m := range mf.GetMetric() {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}
