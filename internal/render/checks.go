package render

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// This file holds the semantic checks of one machine's config (the
// installer image, the API server's certSANs) and the facts that the checks
// across machines compare (package profiles): hostname, static addresses,
// VIPs and the control-plane endpoint.

// addressKinds are the documents that give a link static addresses, each
// as addresses[].address (Talos' v1.12 and v1.13 config schemas).
var addressKinds = map[string]bool{
	"LinkConfig": true, "VLANConfig": true, "BondConfig": true, "BridgeConfig": true,
	"DummyLinkConfig": true, "WireguardConfig": true, "VRFConfig": true,
}

// vipKinds are the documents whose name is a virtual IP the control plane
// shares (Talos' v1.12 and v1.13 config schemas).
var vipKinds = map[string]bool{"Layer2VIPConfig": true, "HCloudVIPConfig": true}

// semantic runs the checks of what Talos accepts but what breaks the
// machine or its cluster.
func (c *checker) semantic(docs []any, doc Map, in Input) {
	c.installerImage(doc, in)
	c.certSANs(docs, doc)
}

// installerImage checks machine.install.image against the installer of the
// machine's schematic and Talos version, the image tinderbox fills when the
// config leaves it empty. The installer writes the system that boots from
// disk after install: one without the schematic (the stock
// ghcr.io/siderolabs/installer, or another schematic's) silently lacks the
// schematic's extensions and kernel arguments, an error. The right
// schematic at another version is a warning: the machine installs and
// runs that version, which talosctl upgrade changes later, a choice
// someone may make on purpose. The image's registry is not compared, so a
// mirror of the factory passes.
func (c *checker) installerImage(doc Map, in Input) {
	path := []string{"machine", "install", "image"}
	img, _ := lookup(doc, path...).(string)
	id, version := in.Data.Talos.SchematicID, in.Data.Talos.Version
	if img == "" || id == "" || img == in.InstallerImage {
		return
	}
	want := in.InstallerImage
	if want == "" {
		want = "<factory host>/installer/" + id + ":" + version
	}
	fix := "delete this line so that tinderbox fills " + want
	schematic, tag := installerRef(img)
	switch {
	case schematic == "":
		c.add(path, img, "%s is not an Image Factory installer: the installed system would lack the extensions and kernel arguments of schematic %s; %s", img, short(id), fix)
	case schematic != id:
		c.add(path, img, "%s installs schematic %s, not the machine's %s (talos.schematic); %s", img, short(schematic), short(id), fix)
	case tag != "" && strings.TrimPrefix(tag, "v") != strings.TrimPrefix(version, "v"):
		c.warn(path, img, "%s installs Talos %s, not the machine's %s (talos.version), so the machine runs %s once installed; %s", img, tag, version, tag, fix)
	}
}

// installerRef splits an image reference of the Image Factory's form,
// host/…/<schematic id>:<tag>[@digest], into the schematic ID and the tag;
// the ID is "" when the repository's last part is not a 64-hex ID.
func installerRef(img string) (schematic, tag string) {
	ref, _, _ := strings.Cut(img, "@")
	repo := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		repo, tag = ref[:i], ref[i+1:]
	}
	last := repo[strings.LastIndex(repo, "/")+1:]
	if !isHexID(last) {
		return "", tag
	}
	return last, tag
}

// isHexID says whether s is a 64-hex Image Factory schematic ID.
func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// short is a schematic ID's first 12 digits, enough to tell two apart.
func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

// certSANs checks, on a control-plane config that sets
// cluster.apiServer.certSANs, that they name the host of
// cluster.controlPlane.endpoint and every VIP of the machine: clients
// reach the API server there, and a list that misses them is most often
// one left behind when the endpoint or the VIP moved.
func (c *checker) certSANs(docs []any, doc Map) {
	if t, _ := lookup(doc, "machine", "type").(string); t != "controlplane" && t != "init" {
		return
	}
	path := []string{"cluster", "apiServer", "certSANs"}
	sans, _ := lookup(doc, path...).([]any)
	if len(sans) == 0 {
		return
	}
	have := map[string]bool{}
	for _, s := range sans {
		have[sanKey(fmt.Sprint(s))] = true
	}
	type need struct{ host, what string }
	var needs []need
	if h := endpointHost(doc); h != "" {
		needs = append(needs, need{h, "the host of cluster.controlPlane.endpoint"})
	}
	for _, v := range vips(docs, doc) {
		needs = append(needs, need{v.value, "a VIP of this machine, " + v.where})
	}
	for _, n := range needs {
		if have[sanKey(n.host)] {
			continue
		}
		have[sanKey(n.host)] = true
		c.add(path, nil, "%s (%s) is not among them, so the API server's certificate may not cover it: add %s to this list, or drop certSANs", n.host, n.what, n.host)
	}
}

// sanKey is how a certSAN compares: an IP in its canonical form, a DNS
// name in lower case.
func sanKey(s string) string {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().String()
	}
	return strings.ToLower(s)
}

// endpointHost is the host of cluster.controlPlane.endpoint, "" when the
// endpoint is not set or not a URL.
func endpointHost(doc Map) string {
	s, _ := lookup(doc, "cluster", "controlPlane", "endpoint").(string)
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// found is one value of a config and where in the rendered config it is:
// the document's kind and name ("" for the v1alpha1 document) and the key
// path inside it.
type found struct {
	value      string
	raw        any // the value as the config has it (an address with its prefix length)
	kind, name string
	segs       []string
	where      string // path as a person reads it
}

func newFound(value, kind, name string, segs []string) found {
	where := pathString(segs)
	if kind != "" {
		where = docLabel(kind, name) + "." + where
	}
	return found{value: value, raw: value, kind: kind, name: name, segs: segs, where: where}
}

// vips are the machine's virtual IPs: machine.network.interfaces[].vip.ip,
// the same on their vlans, and Layer2VIPConfig/HCloudVIPConfig documents
// (named by the IP).
func vips(docs []any, doc Map) []found {
	var out []found
	ifPath := []string{"machine", "network", "interfaces"}
	for i, v := range listAt(doc, ifPath) {
		p := index(ifPath, i)
		if ip, ok := lookup(v, "vip", "ip").(string); ok && ip != "" {
			out = append(out, newFound(ip, "", "", append(p[:len(p):len(p)], "vip", "ip")))
		}
		vp := append(p[:len(p):len(p)], "vlans")
		for j, vl := range listAt(v, []string{"vlans"}) {
			q := index(vp, j)
			if ip, ok := lookup(vl, "vip", "ip").(string); ok && ip != "" {
				out = append(out, newFound(ip, "", "", append(q[:len(q):len(q)], "vip", "ip")))
			}
		}
	}
	for _, d := range docs {
		m := d.(Map)
		kind, _ := m.Get("kind")
		k, _ := kind.(string)
		if !vipKinds[k] {
			continue
		}
		if name, ok := m.Get("name"); ok {
			s := fmt.Sprint(name)
			out = append(out, newFound(s, k, s, []string{"name"}))
		}
	}
	return out
}

// addresses are the machine's static addresses, without their prefix
// length: machine.network.interfaces[].addresses and their vlans', and
// addresses[].address of the link documents (addressKinds).
func addresses(docs []any, doc Map) []found {
	var out []found
	add := func(v any, kind, name string, segs []string) {
		s, _ := v.(string)
		var f found
		if p, err := netip.ParsePrefix(s); err == nil {
			f = newFound(p.Addr().String(), kind, name, segs)
		} else if a, err := netip.ParseAddr(s); err == nil {
			f = newFound(a.String(), kind, name, segs)
		} else {
			return
		}
		f.raw = s
		out = append(out, f)
	}
	ifPath := []string{"machine", "network", "interfaces"}
	for i, v := range listAt(doc, ifPath) {
		p := index(ifPath, i)
		ap := append(p[:len(p):len(p)], "addresses")
		for j, a := range listAt(v, []string{"addresses"}) {
			add(a, "", "", index(ap, j))
		}
		vp := append(p[:len(p):len(p)], "vlans")
		for j, vl := range listAt(v, []string{"vlans"}) {
			q := append(index(vp, j), "addresses")
			for k, a := range listAt(vl, []string{"addresses"}) {
				add(a, "", "", index(q, k))
			}
		}
	}
	for _, d := range docs {
		m := d.(Map)
		kind, _ := m.Get("kind")
		k, _ := kind.(string)
		if !addressKinds[k] {
			continue
		}
		name, _ := m.Get("name")
		for j, a := range listAt(m, []string{"addresses"}) {
			add(lookup(a, "address"), k, fmt.Sprint(name), append(index([]string{"addresses"}, j), "address"))
		}
	}
	return out
}

// listAt is the list at path, nil when there is none (validate reports a
// value that is not a list).
func listAt(v any, path []string) []any {
	l, _ := lookup(v, path...).([]any)
	return l
}

// Facts are the values of one rendered config that the checks across
// machines compare (package profiles), each with the file and line of the
// layer that set it where one did.
type Facts struct {
	// ControlPlane is true for machine.type controlplane or init.
	ControlPlane bool
	// Hostname is machine.network.hostname or HostnameConfig's hostname;
	// its Value is "" when the config names no host.
	Hostname Fact
	// Addresses are the static addresses, without prefix length.
	Addresses []Fact
	// VIPs are the virtual IPs the machine may hold.
	VIPs []Fact
	// Endpoint is the host of cluster.controlPlane.endpoint.
	Endpoint Fact
}

// Fact is one value of a rendered config: Path is where in the config
// (machine.network.interfaces[0].addresses[0], or `LinkConfig "eth0":
// addresses[0].address` for another document); File and Line are the
// base config or patch that set it, "" and 0 when none did (a value
// tinderbox filled in, such as the profile's hostname).
type Fact struct {
	Value, Path string
	File        string
	Line        int
}

// collect fills f from a rendered config, locating each value in the
// sources it was built from. It does nothing on a nil f.
func (f *Facts) collect(docs []any, o origins) {
	if f == nil {
		return
	}
	*f = Facts{}
	i := mainDoc(docs)
	if i < 0 {
		return
	}
	doc := docs[i].(Map)
	fact := func(v found) Fact {
		file, line := o.find(v)
		return Fact{Value: v.value, Path: v.where, File: file, Line: line}
	}
	t, _ := lookup(doc, "machine", "type").(string)
	f.ControlPlane = t == "controlplane" || t == "init"
	if h, _ := lookup(doc, "machine", "network", "hostname").(string); h != "" {
		f.Hostname = fact(newFound(h, "", "", []string{"machine", "network", "hostname"}))
	}
	for _, d := range docs {
		m := d.(Map)
		if k, _ := m.Get("kind"); k == "HostnameConfig" {
			if h, _ := m.Get("hostname"); h != nil && h != "" {
				f.Hostname = fact(newFound(fmt.Sprint(h), "HostnameConfig", "", []string{"hostname"}))
			}
		}
	}
	for _, a := range addresses(docs, doc) {
		f.Addresses = append(f.Addresses, fact(a))
	}
	for _, v := range vips(docs, doc) {
		f.VIPs = append(f.VIPs, fact(v))
	}
	if h := endpointHost(doc); h != "" {
		f.Endpoint = fact(newFound(h, "", "", []string{"cluster", "controlPlane", "endpoint"}))
	}
}

// find returns the file and line of the last source that set v: a JSON
// patch operation or a strategic-merge document of v's document (same
// kind, and name when v has one) holding v's path and value. The endpoint
// is matched by path alone, as its value is the URL around the host. It
// returns "" and 0 when no source holds it.
func (o origins) find(v found) (string, int) {
	want := v.raw
	if v.kind == "" && pathString(v.segs) == "cluster.controlPlane.endpoint" {
		want = nil
	}
	for i := len(o) - 1; i >= 0; i-- {
		s := o[i]
		if ops, ok := jsonPatchOps(s.doc); ok {
			if v.kind != "" {
				continue
			}
			if line := opLine(ops, s.node.n, v.segs, want); line > 0 {
				return s.file, line
			}
			continue
		}
		m, ok := s.doc.(Map)
		if !ok {
			continue
		}
		kind, _ := m.Get("kind")
		if k, _ := kind.(string); k != v.kind {
			continue
		}
		if v.kind != "" && v.name != "" {
			if name, ok := m.Get("name"); ok && fmt.Sprint(name) != v.name {
				continue
			}
		}
		if n := findNode(s.node.n.Content[0], v.segs, want); n != nil {
			return s.file, n.Line
		}
	}
	return "", 0
}
