package profiles

import (
	"strings"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/render"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// TestFleet: the checks across machines, over each machine's facts.
func TestFleet(t *testing.T) {
	type m struct {
		host  string
		cp    bool
		addrs []string
		vips  []string
		ep    string
	}
	facts := func(x m) render.Facts {
		f := render.Facts{ControlPlane: x.cp, Endpoint: render.Fact{Value: x.ep, Path: "cluster.controlPlane.endpoint", File: "ep.yaml", Line: 3}}
		for _, a := range x.addrs {
			f.Addresses = append(f.Addresses, render.Fact{Value: a, Path: "addr", File: "link.yaml", Line: 5})
		}
		for _, v := range x.vips {
			f.VIPs = append(f.VIPs, render.Fact{Value: v, Path: "vip"})
		}
		if x.host != "" {
			f.Hostname = render.Fact{Value: x.host, Path: "machine.network.hostname", File: "host.yaml", Line: 2}
		}
		return f
	}
	cp := func(host, addr string) m {
		return m{host: host, cp: true, addrs: []string{addr}, vips: []string{"10.0.0.50"}, ep: "10.0.0.50"}
	}
	tests := []struct {
		name      string
		machines  []m
		wantErrs  []string
		wantWarns []string
	}{
		{name: "a sound cluster", machines: []m{cp("cp-1", "10.0.0.11"), cp("cp-2", "10.0.0.12"), {host: "w-1", addrs: []string{"10.0.0.21"}, ep: "10.0.0.50"}}},
		{
			name:     "same hostname, any case",
			machines: []m{cp("cp-1", "10.0.0.11"), cp("CP-1", "10.0.0.12")},
			wantErrs: []string{
				"host.yaml:2: machine 02-00-00-00-00-00: machine.network.hostname: hostname cp-1: machine 02-00-00-00-00-01 (host.yaml:2) has it too; give each machine its own hostname",
				"host.yaml:2: machine 02-00-00-00-00-01: machine.network.hostname: hostname cp-1: machine 02-00-00-00-00-00 (host.yaml:2) has it too",
			},
		},
		{
			name:     "same address, on three machines",
			machines: []m{cp("cp-1", "10.0.0.11"), cp("cp-2", "10.0.0.12"), {host: "w-1", addrs: []string{"10.0.0.11", "10.0.0.11"}, ep: "10.0.0.50"}, {host: "w-2", addrs: []string{"10.0.0.11"}, ep: "10.0.0.50"}},
			wantErrs: []string{
				"link.yaml:5: machine 02-00-00-00-00-00: addr: static address 10.0.0.11: machine 02-00-00-00-00-02 (w-1, link.yaml:5), machine 02-00-00-00-00-03 (w-2, link.yaml:5) has it too; give each machine its own address",
				"link.yaml:5: machine 02-00-00-00-00-02: addr",
				"link.yaml:5: machine 02-00-00-00-00-03: addr",
			},
		},
		{name: "link-local and loopback addresses are the machine's own", machines: []m{{host: "a", addrs: []string{"169.254.2.53", "127.0.0.2", "fe80::1"}}, {host: "b", addrs: []string{"169.254.2.53", "127.0.0.2", "fe80::1"}}}},
		{
			name:      "endpoint off the control plane, one warning",
			machines:  []m{{host: "cp-1", cp: true, addrs: []string{"10.0.0.11"}, vips: []string{"10.0.0.50"}, ep: "10.0.0.10"}, {host: "w-1", addrs: []string{"10.0.0.21"}, ep: "10.0.0.10"}},
			wantWarns: []string{"ep.yaml:3: machine 02-00-00-00-00-00 (and 1 other machine(s) with this endpoint): warning: cluster.controlPlane.endpoint: 10.0.0.10 is neither a static address nor a VIP of the control-plane machines (10.0.0.11, VIP 10.0.0.50): point the endpoint at the VIP 10.0.0.50, or leave it if 10.0.0.10 is a load balancer in front of them"},
		},
		{name: "endpoint on a control-plane address", machines: []m{{host: "cp-1", cp: true, addrs: []string{"10.0.0.11"}, ep: "10.0.0.11"}}},
		{name: "a DNS endpoint is not checked", machines: []m{{host: "cp-1", cp: true, addrs: []string{"10.0.0.11"}, ep: "api.example.test"}}},
		{name: "workers only: their control plane is elsewhere", machines: []m{{host: "w-1", addrs: []string{"10.0.0.21"}, ep: "10.0.0.10"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f fleet
			for i, x := range tt.machines {
				f.members = append(f.members, member{mac: machine.MAC{2, 0, 0, 0, 0, byte(i)}, hostname: facts(x).Hostname, facts: facts(x)})
			}
			errs, warns := f.check()
			for _, c := range []struct {
				what string
				got  []error
				want []string
			}{{"errors", errs, tt.wantErrs}, {"warnings", warns, tt.wantWarns}} {
				if len(c.got) != len(c.want) {
					t.Errorf("%s: got %q, want %d", c.what, c.got, len(c.want))
					continue
				}
				for i, w := range c.want {
					if !strings.HasPrefix(c.got[i].Error(), w) {
						t.Errorf("%s[%d]: got %q, want it to start %q", c.what, i, c.got[i], w)
					}
				}
			}
		})
	}
}
