package render

import (
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// machineTypes are the values machine.type takes.
var machineTypes = map[string]bool{"controlplane": true, "worker": true, "init": true}

// checker gathers the problems of one rendered config.
type checker struct {
	base  string
	probs []*Problem
}

// add records a problem at path; value, when not nil, is the offending
// value (it helps find the file that introduced it).
func (c *checker) add(path []string, value any, format string, args ...any) {
	c.probs = append(c.probs, &Problem{Path: pathString(path), Msg: fmt.Sprintf(format, args...), segs: path, value: value})
}

// warn records a warning at path, like add.
func (c *checker) warn(path []string, value any, format string, args ...any) {
	c.add(path, value, format, args...)
	c.probs[len(c.probs)-1].Warning = true
}

// addIn records a problem at path inside doc, a document other than the
// v1alpha1 one: its Path starts with the document's kind (and name), as
// in `HostnameConfig.auto` or `ExtensionServiceConfig[nut].configFiles`.
func (c *checker) addIn(doc Map, path []string, value any, format string, args ...any) {
	c.probs = append(c.probs, &Problem{Path: docLabelOf(doc) + "." + pathString(path), Msg: fmt.Sprintf(format, args...), segs: path, value: value, doc: doc})
}

// docLabel names a document other than the v1alpha1 one in a path as
// problems show it: its kind, and its name in brackets when it has one
// (LinkConfig[eth1], HostnameConfig).
func docLabel(kind, name string) string {
	if name == "" {
		return kind
	}
	return kind + "[" + name + "]"
}

// docLabelOf is docLabel of a document.
func docLabelOf(doc Map) string {
	kind, _ := doc.Get("kind")
	name, ok := doc.Get("name")
	if !ok || name == nil {
		return docLabel(fmt.Sprint(kind), "")
	}
	return docLabel(fmt.Sprint(kind), fmt.Sprint(name))
}

// validate checks a rendered config beyond YAML syntax.
func validate(docs []any, in Input) []*Problem {
	c := &checker{base: in.Base.Name}
	i := mainDoc(docs)
	if i < 0 {
		return []*Problem{{File: in.Base.Name, Msg: "the config has no v1alpha1 document (a document with `version: v1alpha1`)"}}
	}
	doc := docs[i].(Map)
	if v := lookup(doc, "version"); v != "v1alpha1" {
		c.add([]string{"version"}, v, "is %v, want v1alpha1", v)
	}
	switch t := lookup(doc, "machine", "type").(type) {
	case nil:
		c.add([]string{"machine", "type"}, nil, "not set: want controlplane, worker or init")
	case string:
		if !machineTypes[t] {
			c.add([]string{"machine", "type"}, t, "%q: want controlplane, worker or init", t)
		}
	default:
		c.add([]string{"machine", "type"}, t, "%v: want controlplane, worker or init", t)
	}
	if in.RequireDisk {
		disk, _ := lookup(doc, "machine", "install", "disk").(string)
		sel, _ := lookup(doc, "machine", "install", "diskSelector").(Map)
		if disk == "" && len(sel) == 0 {
			c.add([]string{"machine", "install"}, nil, "neither disk nor diskSelector is set, and the profile installs to disk (install: once)")
		}
	}
	c.interfaces(doc, []string{"machine", "network", "interfaces"})
	c.each(doc, []string{"machine", "network", "nameservers"}, c.addr)
	c.each(doc, []string{"cluster", "network", "podSubnets"}, c.prefix)
	c.each(doc, []string{"cluster", "network", "serviceSubnets"}, c.prefix)
	c.each(doc, []string{"machine", "kubelet", "nodeIP", "validSubnets"}, func(p []string, v any) {
		if s, ok := v.(string); ok {
			v = strings.TrimPrefix(s, "!")
		}
		c.prefix(p, v)
	})
	if ep := lookup(doc, "cluster", "controlPlane", "endpoint"); ep != nil {
		s, _ := ep.(string)
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			c.add([]string{"cluster", "controlPlane", "endpoint"}, ep, "%v: want a URL such as https://192.168.1.50:6443", ep)
		}
	}
	c.duplicateDocs(docs)
	c.hostnames(docs, doc)
	c.semantic(docs, doc, in)
	c.schema(docs, in.Data.Talos.Version)
	return c.probs
}

// hostnames checks the HostnameConfig documents against the main one: a
// HostnameConfig with both hostname and auto is refused by Talos (they
// conflict; v1.12 schema, HostnameConfig.auto), and a config that names
// its host in both machine.network.hostname and a HostnameConfig has two
// sources for one value: a warning, since which one Talos keeps is not
// something a reader of the config can tell.
func (c *checker) hostnames(docs []any, main Map) {
	legacy, _ := lookup(main, "machine", "network", "hostname").(string)
	for _, d := range docs {
		m := d.(Map)
		if k, _ := m.Get("kind"); k != "HostnameConfig" {
			continue
		}
		name, _ := m.Get("hostname")
		auto, hasAuto := m.Get("auto")
		if name != nil && name != "" && hasAuto {
			c.addIn(m, []string{"auto"}, auto, "set beside hostname %v; Talos refuses both: drop auto", name)
		}
		if legacy != "" {
			c.warn([]string{"machine", "network", "hostname"}, legacy, "the host is also named by a HostnameConfig document; keep one (from Talos v1.12, the HostnameConfig document)")
		}
	}
}

// list returns the list at path, reporting a value that is not a list.
func (c *checker) list(doc Map, path []string) []any {
	v := lookup(doc, path...)
	if v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		c.add(path, nil, "want a list, have %v", v)
	}
	return l
}

func (c *checker) each(doc Map, path []string, check func([]string, any)) {
	for i, v := range c.list(doc, path) {
		check(index(path, i), v)
	}
}

func index(path []string, i int) []string {
	return append(path[:len(path):len(path)], "["+strconv.Itoa(i)+"]")
}

func (c *checker) addr(path []string, v any) {
	s, _ := v.(string)
	if _, err := netip.ParseAddr(s); err != nil {
		c.add(path, v, "%v is not an IP address", v)
	}
}

func (c *checker) prefix(path []string, v any) {
	s, _ := v.(string)
	if _, err := netip.ParsePrefix(s); err != nil {
		c.add(path, v, "%v is not an address/bits prefix (CIDR)", v)
	}
}

// interfaces checks machine.network.interfaces: no two entries for one
// interface or device selector, well-formed addresses, routes, VIPs and
// VLANs.
func (c *checker) interfaces(doc Map, path []string) {
	var seen []Map
	for i, v := range c.list(doc, path) {
		p := index(path, i)
		m, ok := v.(Map)
		if !ok {
			c.add(p, nil, "want a map, have %v", v)
			continue
		}
		for _, s := range seen {
			if sameKey(s, m, "interface") || sameKey(s, m, "deviceSelector") {
				name, _ := m.Get("interface")
				if name == nil {
					name, _ = m.Get("deviceSelector")
				}
				c.add(p, nil, "a second entry for interface %v", name)
			}
		}
		seen = append(seen, m)
		c.link(m, p)
		var vlans []Map
		vp := append(p[:len(p):len(p)], "vlans")
		for j, vv := range c.list(m, []string{"vlans"}) {
			q := index(vp, j)
			vm, ok := vv.(Map)
			if !ok {
				c.add(q, nil, "want a map, have %v", vv)
				continue
			}
			for _, s := range vlans {
				if sameKey(s, vm, "vlanId") {
					id, _ := vm.Get("vlanId")
					c.add(q, nil, "a second entry for VLAN %v", id)
				}
			}
			vlans = append(vlans, vm)
			c.link(vm, q)
		}
	}
}

// link checks the address settings an interface and a VLAN share.
func (c *checker) link(m Map, path []string) {
	sub := func(k ...string) []string { return append(path[:len(path):len(path)], k...) }
	for i, a := range c.list(m, []string{"addresses"}) {
		c.prefix(index(sub("addresses"), i), a)
	}
	for i, r := range c.list(m, []string{"routes"}) {
		rm, _ := r.(Map)
		if n, ok := rm.Get("network"); ok && n != "" {
			c.prefix(append(index(sub("routes"), i), "network"), n)
		}
		if g, ok := rm.Get("gateway"); ok && g != "" {
			c.addr(append(index(sub("routes"), i), "gateway"), g)
		}
	}
	if ip := lookup(m, "vip", "ip"); ip != nil {
		c.addr(sub("vip", "ip"), ip)
	}
}

// duplicateDocs reports two documents of one kind and name.
func (c *checker) duplicateDocs(docs []any) {
	seen := map[string]bool{}
	for _, d := range docs {
		m := d.(Map)
		kind, ok := m.Get("kind")
		if !ok {
			continue
		}
		name, _ := m.Get("name")
		key := fmt.Sprint(kind, "\x00", name)
		if seen[key] {
			what := fmt.Sprint(kind)
			if name != nil {
				what += fmt.Sprintf(" %q", name)
			}
			c.probs = append(c.probs, &Problem{File: c.base, Msg: "two documents of kind " + what})
		}
		seen[key] = true
	}
}

// nodeRef is a parsed document's node, for finding the line of a path.
type nodeRef struct{ n *yaml.Node }

// origins are the documents a config was built from, base first.
type origins []source

// locate fills p.File and p.Line with the last source that set the value
// at p's path: a strategic-merge document holding the path (and the same
// value, when the problem names one), or a JSON patch operation on the
// path or one of its parents. A problem no source explains is put on the
// base config.
func (o origins) locate(p *Problem) {
	if p.File != "" {
		return
	}
	for i := len(o) - 1; i >= 0; i-- {
		s := o[i]
		if ops, ok := jsonPatchOps(s.doc); ok {
			if p.doc != nil {
				continue // JSON patches change the v1alpha1 document only
			}
			if line := opLine(ops, s.node.n, p.segs, p.value); line > 0 {
				p.File, p.Line = s.file, line
				return
			}
			continue
		}
		if m, ok := s.doc.(Map); ok {
			kind, kinded := m.Get("kind")
			if kinded != (p.doc != nil) {
				continue
			}
			if kinded && !sameDoc(p.doc, m, kind) {
				continue
			}
		}
		if n := findNode(s.node.n.Content[0], p.segs, p.value); n != nil {
			p.File, p.Line = s.file, n.Line
			return
		}
	}
	p.File = o[0].file
}

// findNode finds the node at path, trying every item of a list for an
// index (a merged list's indexes differ from the patch's); with want set,
// the node must hold that scalar.
func findNode(n *yaml.Node, path []string, want any) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if len(path) == 0 {
		if want == nil || (n.Kind == yaml.ScalarNode && n.Value == fmt.Sprint(want)) {
			return n
		}
		return nil
	}
	seg := path[0]
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg {
				return findNode(n.Content[i+1], path[1:], want)
			}
		}
	case yaml.SequenceNode:
		if !strings.HasPrefix(seg, "[") {
			return nil
		}
		for _, c := range n.Content {
			if f := findNode(c, path[1:], want); f != nil {
				return f
			}
		}
	}
	return nil
}

// opLine returns the line of the last operation that set the value at
// path: one on path itself, or on a parent of it whose value holds the
// rest of path (and want). It returns 0 when there is none.
func opLine(ops []any, n *yaml.Node, path []string, want any) int {
	seq := n.Content[0]
	for i := len(ops) - 1; i >= 0 && i < len(seq.Content); i-- {
		p, _ := ops[i].(Map).Get("path")
		ps, _ := p.(string)
		depth, ok := pointerCovers(ps, path)
		if !ok {
			continue
		}
		if depth == len(path) {
			return seq.Content[i].Line
		}
		if v := findNode(seq.Content[i], []string{"value"}, nil); v != nil && findNode(v, path[depth:], want) != nil {
			return seq.Content[i].Line
		}
	}
	return 0
}

// pointerCovers says whether a JSON pointer addresses path or a parent of
// it ("-" and numbers match any index), and how many segments it has.
func pointerCovers(ptr string, path []string) (int, bool) {
	if ptr == "" {
		return 0, true
	}
	segs := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
	if len(segs) > len(path) {
		return 0, false
	}
	for i, s := range segs {
		s = strings.NewReplacer("~1", "/", "~0", "~").Replace(s)
		if strings.HasPrefix(path[i], "[") {
			continue
		}
		if s != path[i] {
			return 0, false
		}
	}
	return len(segs), true
}
