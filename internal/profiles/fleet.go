package profiles

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/tinderbox-boot/tinderbox/internal/render"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// The checks across machines: what each machine's config may say on its
// own, but what two machines of one directory must not say together. The
// directory is taken as one network: tinderbox boots the machines of one
// LAN (and its relayed subnets), so a hostname or an address used twice is
// a clash even between two clusters.

// fleet gathers the facts of every machine of a load, in MAC order.
type fleet struct {
	members []member
}

// member is one machine's facts, with where its profile sets its hostname.
type member struct {
	mac      machine.MAC
	hostname render.Fact
	facts    render.Facts
}

// add records p's rendered facts. A hostname no config file set is the
// profile's, located at the layer that sets `hostname`.
func (f *fleet) add(ls *layers, p Profile, facts render.Facts) {
	h := facts.Hostname
	if h.Value == "" {
		h = render.Fact{Value: p.Hostname}
	}
	if h.File == "" && h.Value != "" && h.Value == p.Hostname {
		h.Path, h.File, h.Line = "hostname", ls.setter(p, "hostname"), ls.line(p, "hostname")
	}
	f.members = append(f.members, member{mac: p.MAC, hostname: h, facts: facts})
}

// check returns the problems across machines: a hostname or a static
// address that two machines share (errors: Kubernetes would see one node
// where there are two, and the network one host), and a control-plane
// endpoint that is an IP address but no control-plane machine's static
// address or VIP (a warning: it may be a load balancer's). An endpoint
// given as a DNS name cannot be checked offline and is not.
func (f *fleet) check() (errs, warnings []error) {
	errs = append(errs, f.duplicates("hostname", func(m member) []render.Fact {
		if m.hostname.Value == "" {
			return nil
		}
		h := m.hostname
		h.Value = strings.ToLower(h.Value)
		return []render.Fact{h}
	}, "give each machine its own hostname")...)
	errs = append(errs, f.duplicates("static address", func(m member) []render.Fact {
		var out []render.Fact
		for _, a := range m.facts.Addresses {
			ip, err := netip.ParseAddr(a.Value)
			// Loopback and link-local addresses (a dummy link's
			// 169.254.x.y on every node, say) do not leave the machine.
			if err != nil || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
				continue
			}
			out = append(out, a)
		}
		return out
	}, "give each machine its own address")...)
	return errs, f.endpoints()
}

// duplicates reports each value of facts that more than one machine has,
// on every machine that has it, naming the others.
func (f *fleet) duplicates(what string, facts func(member) []render.Fact, fix string) []error {
	type use struct {
		m    *member
		fact render.Fact
	}
	uses := map[string][]use{}
	var order []string
	for i := range f.members {
		m := &f.members[i]
		seen := map[string]bool{}
		for _, fc := range facts(*m) {
			if seen[fc.Value] {
				continue // one machine giving itself an address twice is no clash
			}
			seen[fc.Value] = true
			if len(uses[fc.Value]) == 0 {
				order = append(order, fc.Value)
			}
			uses[fc.Value] = append(uses[fc.Value], use{m, fc})
		}
	}
	var errs []error
	for _, v := range order {
		us := uses[v]
		if len(us) < 2 {
			continue
		}
		for i, u := range us {
			var others []string
			for j, o := range us {
				if j != i {
					host := o.m.hostname.Value
					if what == "hostname" {
						host = ""
					}
					others = append(others, "machine "+o.m.mac.Dashed()+where(host, o.fact))
				}
			}
			msg := fmt.Sprintf("%s %s: %s has it too; %s", what, v, strings.Join(others, ", "), fix)
			if u.fact.Path != what {
				msg = u.fact.Path + ": " + msg
			}
			errs = append(errs, &Problem{Machine: u.m.mac.Dashed(), File: u.fact.File, Line: u.fact.Line, Msg: msg})
		}
	}
	return errs
}

// where is " (hostname, file:line)" for naming another machine's fact,
// leaving out what is unknown (or, for hostname, "").
func where(hostname string, fc render.Fact) string {
	var parts []string
	if hostname != "" {
		parts = append(parts, hostname)
	}
	if fc.File != "" {
		loc := fc.File
		if fc.Line > 0 {
			loc += fmt.Sprintf(":%d", fc.Line)
		}
		parts = append(parts, loc)
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// endpoints warns about control-plane endpoints that are IP addresses
// but no control-plane machine's static address or VIP. The control plane
// of an endpoint is the control-plane machines with the same endpoint,
// or every control-plane machine of the directory when none has it; a
// directory without control-plane machines (a cluster's workers only) is
// not checked. Machines that share an endpoint set at one place get one
// warning, on the first of them.
func (f *fleet) endpoints() []error {
	type key struct{ host, file string }
	cps := map[string][]*member{} // endpoint host → control-plane machines
	var all []*member
	for i := range f.members {
		m := &f.members[i]
		if m.facts.ControlPlane {
			cps[m.facts.Endpoint.Value] = append(cps[m.facts.Endpoint.Value], m)
			all = append(all, m)
		}
	}
	if len(all) == 0 {
		return nil
	}
	type group struct {
		first *member
		n     int
	}
	groups := map[key]*group{}
	var order []key
	for i := range f.members {
		m := &f.members[i]
		ep := m.facts.Endpoint
		ip, err := netip.ParseAddr(ep.Value)
		if err != nil {
			continue
		}
		plane := cps[ep.Value]
		if len(plane) == 0 {
			plane = all
		}
		if servedBy(ip, plane) {
			continue
		}
		k := key{ep.Value, fmt.Sprintf("%s:%d", ep.File, ep.Line)}
		if g, ok := groups[k]; ok {
			g.n++
			continue
		}
		groups[k] = &group{first: m, n: 1}
		order = append(order, k)
	}
	var warns []error
	for _, k := range order {
		g := groups[k]
		m := g.first
		ep := m.facts.Endpoint
		plane := cps[ep.Value]
		if len(plane) == 0 {
			plane = all
		}
		also := ""
		if g.n > 1 {
			also = fmt.Sprintf(" (and %d other machine(s) with this endpoint)", g.n-1)
		}
		warns = append(warns, &Problem{
			Machine: m.mac.Dashed() + also, File: ep.File, Line: ep.Line,
			Msg: fmt.Sprintf("warning: %s: %s is neither a static address nor a VIP of the control-plane machines (%s): point the endpoint at %s, or leave it if %s is a load balancer in front of them",
				ep.Path, ep.Value, planeAddrs(plane), suggest(plane), ep.Value),
		})
	}
	return warns
}

// servedBy says whether ip is a static address or a VIP of one of plane.
func servedBy(ip netip.Addr, plane []*member) bool {
	for _, m := range plane {
		for _, fs := range [][]render.Fact{m.facts.Addresses, m.facts.VIPs} {
			for _, a := range fs {
				if b, err := netip.ParseAddr(a.Value); err == nil && b.Unmap() == ip.Unmap() {
					return true
				}
			}
		}
	}
	return false
}

// planeAddrs lists the control plane's addresses and VIPs, each once.
func planeAddrs(plane []*member) string {
	var addrs, vips []string
	seen := map[string]bool{}
	for _, m := range plane {
		for _, a := range m.facts.Addresses {
			if !seen[a.Value] {
				seen[a.Value] = true
				addrs = append(addrs, a.Value)
			}
		}
		for _, v := range m.facts.VIPs {
			if !seen[v.Value] {
				seen[v.Value] = true
				vips = append(vips, "VIP "+v.Value)
			}
		}
	}
	out := append(addrs, vips...)
	if len(out) == 0 {
		return "they have no static address or VIP"
	}
	return strings.Join(out, ", ")
}

// suggest is what the endpoint should name: the control plane's VIP
// when it has one, else one of its addresses.
func suggest(plane []*member) string {
	for _, m := range plane {
		if len(m.facts.VIPs) > 0 {
			return "the VIP " + m.facts.VIPs[0].Value
		}
	}
	for _, m := range plane {
		if len(m.facts.Addresses) > 0 {
			return "a control-plane address such as " + m.facts.Addresses[0].Value
		}
	}
	return "a control-plane machine"
}
