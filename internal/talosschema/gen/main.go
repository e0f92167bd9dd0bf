// Command gen writes tinderbox's Talos config validation data
// (../data/v1.X.json) from Talos' published config schema
// (pkg/machinery/config/schemas/config.schema.json of each release) and the
// list of YAML keys each release's v1alpha1 decoder accepts. It is run by
// `go generate ./internal/talosschema`.
//
// The input directory holds schemas/v1.X.json and, optionally,
// decoder-fields/v1.X.json (a JSON object: v1alpha1 struct name → its YAML
// keys). The output keeps only what validation needs: for each document
// kind the tree of allowed keys with value types, enums, patterns, required
// keys and deprecated keys; every description and example is dropped.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// defaultDir is where the generator finds its input when run by go
// generate (in internal/talosschema) from a checkout beside it.
var defaultDir = filepath.Join("..", "..", "..", "shared", "talos")

func main() {
	dir := flag.String("dir", defaultDir, "directory holding schemas/v1.X.json and decoder-fields/v1.X.json")
	out := flag.String("out", "data", "directory to write v1.X.json into")
	flag.Parse()
	files, err := generate(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := write(*out, files); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// write replaces the .json files of dir with files.
func write(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if _, keep := files[filepath.Base(f)]; !keep {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// node is one value type of the output; the runtime package reads the same
// JSON shape. T is "any", "obj" (a struct: Keys, closed unless Open),
// "dict" (any keys, values of type Elem), "list" (items of type Elem),
// "str" (any scalar; Enum and Pat restrict it), "int", "bool" or "or" (one
// of Alt). Node 0 is always "any".
type node struct {
	T    string            `json:"t"`
	Keys map[string]int    `json:"k,omitempty"`
	Dep  map[string]string `json:"d,omitempty"`
	Req  []string          `json:"r,omitempty"`
	Open bool              `json:"o,omitempty"`
	Elem int               `json:"e,omitempty"`
	Alt  []int             `json:"a,omitempty"`
	Enum []string          `json:"n,omitempty"`
	Pat  string            `json:"p,omitempty"`
}

// doc is one document kind: the v1alpha1 document has Version set, the
// others APIVersion and Kind.
type doc struct {
	Version    string `json:"version,omitempty"`
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Node       int    `json:"node"`
}

type output struct {
	Talos string  `json:"talos"`
	Docs  []doc   `json:"docs"`
	Nodes []*node `json:"nodes"`
}

// schemaDoc is the part of a JSON schema (draft 2020-12) this reads.
type schemaDoc struct {
	Defs  map[string]*schema `json:"$defs"`
	OneOf []*schema          `json:"oneOf"`
}

type schema struct {
	Ref                  string             `json:"$ref"`
	Type                 string             `json:"type"`
	Enum                 []any              `json:"enum"`
	Pattern              string             `json:"pattern"`
	Properties           map[string]*schema `json:"properties"`
	PatternProperties    map[string]*schema `json:"patternProperties"`
	AdditionalProperties json.RawMessage    `json:"additionalProperties"`
	Items                *schema            `json:"items"`
	OneOf                []*schema          `json:"oneOf"`
	AnyOf                []*schema          `json:"anyOf"`
	Required             []string           `json:"required"`
}

// hints types keys that the decoder accepts but no release's schema
// describes (deprecated before the oldest schema here), as schema
// fragments. Keys missing here and from every schema take any value.
var hints = map[string]string{
	"v1alpha1.Config.persist":                         `{"type":"boolean"}`,
	"v1alpha1.ClusterConfig.allowSchedulingOnMasters": `{"type":"boolean"}`,
	"v1alpha1.MachineConfig.disks":                    `{"type":"array","items":{"$ref":"#/$defs/v1alpha1.MachineDisk"}}`,
	"v1alpha1.MachineDisk.device":                     `{"type":"string"}`,
	"v1alpha1.MachineDisk.partitions":                 `{"type":"array","items":{"$ref":"#/$defs/v1alpha1.DiskPartition"}}`,
	"v1alpha1.DiskPartition.mountpoint":               `{"type":"string"}`,
	"v1alpha1.InstallConfig.bootloader":               `{"type":"boolean"}`,
	"v1alpha1.InstallConfig.extensions":               `{"type":"array","items":{"$ref":"#/$defs/v1alpha1.InstallExtensionConfig"}}`,
	"v1alpha1.InstallExtensionConfig.image":           `{"type":"string"}`,
	"v1alpha1.Device.cidr":                            `{"type":"string"}`,
	"v1alpha1.Vlan.cidr":                              `{"type":"string"}`,
	"v1alpha1.EtcdConfig.subnet":                      `{"type":"string"}`,
}

// networkDocs are the documents that replace machine.network's fields
// from Talos v1.12 (and machine.network itself once the schema drops it).
var networkDocs = []string{"HostnameConfig", "LinkConfig", "BondConfig", "BridgeConfig", "VLANConfig", "DHCPv4Config", "Layer2VIPConfig", "ResolverConfig", "StaticHostConfig", "KubeSpanConfig"}

// replacements names the documents that replace a deprecated key; a
// version's data names those of them that version reads.
var replacements = map[string][]string{
	"v1alpha1.NetworkConfig.hostname":             {"HostnameConfig"},
	"v1alpha1.NetworkConfig.interfaces":           {"LinkConfig", "BondConfig", "BridgeConfig", "VLANConfig", "DHCPv4Config", "Layer2VIPConfig"},
	"v1alpha1.NetworkConfig.nameservers":          {"ResolverConfig"},
	"v1alpha1.NetworkConfig.searchDomains":        {"ResolverConfig"},
	"v1alpha1.NetworkConfig.disableSearchDomain":  {"ResolverConfig"},
	"v1alpha1.NetworkConfig.extraHostEntries":     {"StaticHostConfig"},
	"v1alpha1.NetworkConfig.kubespan":             {"KubeSpanConfig"},
	"v1alpha1.MachineConfig.network":              networkDocs,
	"v1alpha1.MachineConfig.registries":           {"RegistryMirrorConfig", "RegistryAuthConfig", "RegistryTLSConfig"},
	"v1alpha1.MachineConfig.time":                 {"TimeSyncConfig"},
	"v1alpha1.MachineConfig.systemDiskEncryption": {"VolumeConfig"},
	"v1alpha1.MachineConfig.env":                  {"EnvironmentConfig"},
	"v1alpha1.MachineConfig.disks":                {"UserVolumeConfig"},
}

// extraEnum lists values Talos accepts beyond its schema's enum:
// machine.type "init" is deprecated but still read.
var extraEnum = map[string][]string{
	"v1alpha1.MachineConfig.type": {"init"},
}

// release is one minor version's inputs.
type release struct {
	name    string // v1.12
	defs    map[string]*schema
	decoder map[string][]string // nil without a decoder-fields file
	roots   []string            // $defs the top-level oneOf selects
}

// generate reads dir and returns the output files by name.
func generate(dir string) (map[string][]byte, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "schemas", "v*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no schemas/v*.json in %s", dir)
	}
	var rels []*release
	for _, p := range paths {
		r, err := load(dir, strings.TrimSuffix(filepath.Base(p), ".json"))
		if err != nil {
			return nil, err
		}
		rels = append(rels, r)
	}
	sort.Slice(rels, func(i, j int) bool { return versionLess(rels[i].name, rels[j].name) })
	files := map[string][]byte{}
	for i, r := range rels {
		g := &gen{rel: r, others: others(rels, i), index: map[string]int{}, defs: map[string]int{}}
		o, err := g.output()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r.name, err)
		}
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		if err := enc.Encode(o); err != nil {
			return nil, err
		}
		files[r.name+".json"] = b.Bytes()
	}
	return files, nil
}

// others orders the releases other than i to borrow a key's type from: the
// older ones newest first, then the newer ones oldest first.
func others(rels []*release, i int) []*release {
	var o []*release
	for j := i - 1; j >= 0; j-- {
		o = append(o, rels[j])
	}
	return append(o, rels[i+1:]...)
}

func load(dir, name string) (*release, error) {
	if _, _, ok := parseVersion(name); !ok {
		return nil, fmt.Errorf("schemas/%s.json: name is not vMAJOR.MINOR", name)
	}
	b, err := os.ReadFile(filepath.Join(dir, "schemas", name+".json"))
	if err != nil {
		return nil, err
	}
	var s schemaDoc
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("schemas/%s.json: %w", name, err)
	}
	r := &release{name: name, defs: s.Defs}
	for _, o := range s.OneOf {
		def, ok := strings.CutPrefix(o.Ref, "#/$defs/")
		if !ok {
			return nil, fmt.Errorf("schemas/%s.json: top-level oneOf entry is not a $defs reference", name)
		}
		r.roots = append(r.roots, def)
	}
	b, err = os.ReadFile(filepath.Join(dir, "decoder-fields", name+".json"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	default:
		if err := json.Unmarshal(b, &r.decoder); err != nil {
			return nil, fmt.Errorf("decoder-fields/%s.json: %w", name, err)
		}
	}
	return r, nil
}

func parseVersion(v string) (major, minor int, ok bool) {
	a, b, found := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	if !found {
		return 0, 0, false
	}
	x, err1 := strconv.Atoi(a)
	y, err2 := strconv.Atoi(b)
	return x, y, err1 == nil && err2 == nil
}

func versionLess(a, b string) bool {
	am, an, _ := parseVersion(a)
	bm, bn, _ := parseVersion(b)
	return am < bm || am == bm && an < bn
}

// gen builds one release's output.
type gen struct {
	rel    *release
	others []*release
	nodes  []*node
	index  map[string]int // a node's JSON → its index
	defs   map[string]int // $defs name → node index, -1 while being built
	kinds  map[string]bool
}

func (g *gen) output() (*output, error) {
	g.intern(&node{T: "any"})
	g.kinds = map[string]bool{}
	for _, root := range g.rel.roots {
		if d := g.rel.defs[root]; d != nil && d.Properties["kind"] != nil {
			for _, k := range d.Properties["kind"].Enum {
				g.kinds[fmt.Sprint(k)] = true
			}
		}
	}
	o := &output{Talos: g.rel.name}
	main := g.rel.defs["v1alpha1.Config"]
	if main == nil {
		return nil, errors.New(`no $defs entry "v1alpha1.Config"`)
	}
	n, err := g.def("v1alpha1.Config")
	if err != nil {
		return nil, err
	}
	o.Docs = append(o.Docs, doc{Version: "v1alpha1", Node: n})
	for _, root := range g.rel.roots {
		d := g.rel.defs[root]
		if d == nil {
			return nil, fmt.Errorf("oneOf names %s, which $defs lacks", root)
		}
		kind, api := d.Properties["kind"], d.Properties["apiVersion"]
		if kind == nil || api == nil {
			continue
		}
		n, err := g.def(root)
		if err != nil {
			return nil, err
		}
		for _, k := range kind.Enum {
			for _, a := range api.Enum {
				o.Docs = append(o.Docs, doc{APIVersion: fmt.Sprint(a), Kind: fmt.Sprint(k), Node: n})
			}
		}
	}
	sort.Slice(o.Docs, func(i, j int) bool {
		a, b := o.Docs[i], o.Docs[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.APIVersion < b.APIVersion
	})
	o.Nodes = g.nodes
	return o, nil
}

// intern returns the index of a node equal to n, adding n if there is none.
func (g *gen) intern(n *node) int {
	b, err := json.Marshal(n)
	if err != nil {
		panic(err) // a node always marshals
	}
	if i, ok := g.index[string(b)]; ok {
		return i
	}
	g.nodes = append(g.nodes, n)
	g.index[string(b)] = len(g.nodes) - 1
	return len(g.nodes) - 1
}

// def builds the struct a $defs entry describes, with the keys of the
// release's schema and decoder both; a key's type comes from this
// release's schema, else from another release's, else from hints.
func (g *gen) def(name string) (int, error) {
	if i, ok := g.defs[name]; ok {
		if i < 0 {
			return 0, fmt.Errorf("$defs %s refers to itself", name)
		}
		return i, nil
	}
	g.defs[name] = -1
	i, err := g.buildDef(name)
	if err != nil {
		return 0, err
	}
	g.defs[name] = i
	return i, nil
}

func (g *gen) buildDef(name string) (int, error) {
	s := g.rel.defs[name]
	fields, decoded := g.rel.decoder[name]
	if decoded && len(fields) == 0 {
		// The decoder reads this type from a scalar or a custom form
		// (an endpoint URL, a size expression), not from keys.
		return 0, nil
	}
	if s == nil && !decoded {
		return 0, nil
	}
	if s != nil && (s.Type != "object" || len(s.Properties) == 0) && !decoded {
		return g.convert(s, name)
	}
	n := &node{T: "obj", Keys: map[string]int{}}
	var keys []string
	if s != nil {
		for k := range s.Properties {
			keys = append(keys, k)
		}
		n.Req = slices.Clone(s.Required)
		slices.Sort(n.Req)
		n.Open = !closed(s.AdditionalProperties)
	}
	for _, k := range fields {
		if s == nil || s.Properties[k] == nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys) // node indexes follow the order nodes are built in
	for _, k := range keys {
		path := name + "." + k
		var ks *schema
		if s != nil {
			ks = s.Properties[k]
		}
		if ks == nil && (s != nil || replacements[path] != nil) {
			// In the decoder but no longer in this release's schema (or
			// in a struct the schema dropped whole, when the key has a
			// replacement of its own).
			if n.Dep == nil {
				n.Dep = map[string]string{}
			}
			n.Dep[k] = g.replacement(path)
		}
		for _, o := range g.others {
			if ks != nil {
				break
			}
			if d := o.defs[name]; d != nil {
				ks = d.Properties[k]
			}
		}
		if ks == nil {
			if h, ok := hints[path]; ok {
				ks = new(schema)
				if err := json.Unmarshal([]byte(h), ks); err != nil {
					return 0, fmt.Errorf("hint %s: %w", path, err)
				}
			}
		}
		if ks == nil {
			n.Keys[k] = 0
			continue
		}
		i, err := g.convert(ks, path)
		if err != nil {
			return 0, err
		}
		if extra := extraEnum[path]; extra != nil {
			e := *g.nodes[i]
			e.Enum = append(slices.Clone(e.Enum), extra...)
			i = g.intern(&e)
		}
		n.Keys[k] = i
	}
	return g.intern(n), nil
}

// replacement names the documents of this release that replace a
// deprecated key, "" when none is known.
func (g *gen) replacement(path string) string {
	var have []string
	for _, k := range replacements[path] {
		if g.kinds[k] {
			have = append(have, k)
		}
	}
	return strings.Join(have, ", ")
}

// goPattern returns a pattern if Go's regexp package compiles it, else ""
// (the validator skips what it cannot check).
func goPattern(p string) string {
	if _, err := regexp.Compile(p); err != nil {
		return ""
	}
	return p
}

// closed says whether additionalProperties forbids other keys.
func closed(raw json.RawMessage) bool {
	return string(bytes.TrimSpace(raw)) == "false"
}

// convert turns a schema into a node; path names it in errors.
func (g *gen) convert(s *schema, path string) (int, error) {
	if s.Ref != "" {
		name, ok := strings.CutPrefix(s.Ref, "#/$defs/")
		if !ok {
			return 0, fmt.Errorf("%s: $ref %q is not a $defs reference", path, s.Ref)
		}
		return g.def(name)
	}
	if alts := append(slices.Clone(s.OneOf), s.AnyOf...); len(alts) > 0 {
		n := &node{T: "or"}
		for _, a := range alts {
			i, err := g.convert(a, path)
			if err != nil {
				return 0, err
			}
			if i == 0 {
				return 0, nil
			}
			n.Alt = append(n.Alt, i)
		}
		return g.intern(n), nil
	}
	if len(s.Enum) > 0 {
		n := &node{T: "str", Pat: goPattern(s.Pattern)}
		for _, e := range s.Enum {
			n.Enum = append(n.Enum, fmt.Sprint(e))
		}
		return g.intern(n), nil
	}
	switch s.Type {
	case "string":
		return g.intern(&node{T: "str", Pat: goPattern(s.Pattern)}), nil
	case "integer":
		return g.intern(&node{T: "int"}), nil
	case "boolean":
		return g.intern(&node{T: "bool"}), nil
	case "array":
		n := &node{T: "list"}
		if s.Items != nil {
			i, err := g.convert(s.Items, path+"[]")
			if err != nil {
				return 0, err
			}
			n.Elem = i
		}
		return g.intern(n), nil
	case "object":
		switch {
		case len(s.Properties) > 0:
			n := &node{T: "obj", Keys: map[string]int{}, Open: !closed(s.AdditionalProperties), Req: slices.Clone(s.Required)}
			slices.Sort(n.Req)
			for _, k := range slices.Sorted(maps.Keys(s.Properties)) {
				i, err := g.convert(s.Properties[k], path+"."+k)
				if err != nil {
					return 0, err
				}
				n.Keys[k] = i
			}
			return g.intern(n), nil
		case len(s.PatternProperties) == 1 && s.PatternProperties[".*"] != nil:
			i, err := g.convert(s.PatternProperties[".*"], path+".*")
			if err != nil {
				return 0, err
			}
			return g.intern(&node{T: "dict", Elem: i}), nil
		case len(s.PatternProperties) > 0:
			return g.intern(&node{T: "dict"}), nil
		case len(s.AdditionalProperties) > 0 && s.AdditionalProperties[0] == '{':
			var as schema
			if err := json.Unmarshal(s.AdditionalProperties, &as); err != nil {
				return 0, fmt.Errorf("%s: additionalProperties: %w", path, err)
			}
			i, err := g.convert(&as, path+".*")
			if err != nil {
				return 0, err
			}
			return g.intern(&node{T: "dict", Elem: i}), nil
		case closed(s.AdditionalProperties) && s.Properties != nil:
			// An empty closed object stands for a type with its own
			// YAML form.
			return 0, nil
		}
		return g.intern(&node{T: "dict"}), nil
	case "":
		return 0, nil
	}
	return 0, fmt.Errorf("%s: unhandled schema type %q", path, s.Type)
}
