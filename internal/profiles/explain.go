package profiles

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tinderbox-boot/tinderbox/internal/render"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// KeyOrigin is where one key of a machine's effective profile was set.
type KeyOrigin struct {
	// Key is the profile key: hostname, groups, talos.version,
	// talos.schematic, talos.arch, install, config, patches[i],
	// kernelArgs[i], or values.<path> for each leaf of values (a list is
	// one leaf: layers replace lists whole).
	Key string
	// Value is the effective value, as text (a list or map in values is
	// written as JSON).
	Value string
	// File and Line locate the layer file that set it last; File is empty
	// when no layer sets the key and Value is its default.
	File string
	Line int
}

// Explanation is a machine's profile and rendered config with the origin
// of each of their values.
type Explanation struct {
	Profile Profile
	// Keys are the profile's keys in a fixed order: hostname, groups, the
	// talos keys, install, config, patches, kernelArgs, then values sorted
	// by path.
	Keys []KeyOrigin
	// Config are the rendered config's leaves (render.Explain).
	Config []render.Origin
}

// Explain reads the directory as Load does, but only as far as one
// machine needs: its layers, its schematic and its config's files. It
// returns where each value of the machine's profile and config came from.
// The error joins the problems that stop that machine's config from
// rendering (each a *Problem), or wraps ErrUnknownMachine. Problems that
// only the checks of Load find (a value Talos would refuse) are not
// errors: a broken config can be explained. Explain blocks while the
// schematic name is resolved.
func Explain(ctx context.Context, opts Options, mac machine.MAC) (*Explanation, error) {
	if err := checkOverlay(opts.Overlay); err != nil {
		return nil, err
	}
	ls, errs := readLayers(opts.Dir, opts.Overlay, nil)
	if ls == nil || ls.broken {
		return nil, errors.Join(errs...)
	}
	if _, ok := ls.machines[mac]; !ok {
		if mine := forFile(errs, filepath.Join(opts.Dir, "machines", mac.Dashed()+".yaml")); len(mine) > 0 {
			return nil, errors.Join(mine...)
		}
		return nil, fmt.Errorf("profiles: explain %s: %w", mac.Dashed(), ErrUnknownMachine)
	}
	p, perrs := ls.effective(mac)
	if len(perrs) > 0 {
		return nil, errors.Join(perrs...)
	}
	id, err := ls.resolve(ctx, opts.Schematics, p.Talos.Schematic, map[string]result{})
	if err != nil {
		return nil, &Problem{Machine: mac.Dashed(), File: ls.setter(p, "talos.schematic"), Line: ls.line(p, "talos.schematic"), Msg: err.Error()}
	}
	p.Talos.SchematicID = id
	in, err := ls.input(p, factoryHost(opts.FactoryURL))
	if err != nil {
		return nil, err
	}
	cfg, err := render.Explain(in)
	if err != nil {
		return nil, machineProblems(mac.Dashed(), err)
	}
	keys, err := ls.keyOrigins(p, opts)
	if err != nil {
		return nil, err
	}
	return &Explanation{Profile: p, Keys: keys, Config: cfg}, nil
}

// forFile returns the problems located in file.
func forFile(errs []error, file string) []error {
	var out []error
	for _, e := range errs {
		var p *Problem
		if errors.As(e, &p) && p.File == file {
			out = append(out, e)
		}
	}
	return out
}

// layerDoc is one layer file of a machine's stack with its parsed YAML.
type layerDoc struct {
	file string
	root *yaml.Node // the top-level map; nil for an empty file
}

// docs parses the layer files of p's stack again, as overlay changes
// them, for the lines of keys the layer type does not keep (list items,
// keys under values).
func (ls *layers) docs(p Profile, opts Options) ([]layerDoc, error) {
	var out []layerDoc
	for _, l := range ls.stack(p) {
		data, over := []byte(nil), false
		if rel, err := filepath.Rel(opts.Dir, l.file); err == nil {
			data, over = opts.Overlay[filepath.ToSlash(rel)]
		}
		if !over {
			var err error
			if data, err = os.ReadFile(l.file); err != nil {
				return nil, &Problem{File: l.file, Msg: err.Error()}
			}
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, yamlProblem(l.file, err)
		}
		d := layerDoc{file: l.file}
		if len(doc.Content) > 0 && doc.Content[0].Kind == yaml.MappingNode {
			d.root = doc.Content[0]
		}
		out = append(out, d)
	}
	return out, nil
}

// at returns the node at a key path in the layer, or nil.
func (d layerDoc) at(keys ...string) *yaml.Node {
	n := d.root
	for _, k := range keys {
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		n = next
	}
	return n
}

// keyLine returns the line of the last key of a path in the layer, 0 when
// the layer does not set it.
func (d layerDoc) keyLine(keys ...string) int {
	parent := d.root
	if len(keys) > 1 {
		parent = d.at(keys[:len(keys)-1]...)
	}
	if parent == nil || parent.Kind != yaml.MappingNode {
		return 0
	}
	last := keys[len(keys)-1]
	for i := 0; i+1 < len(parent.Content); i += 2 {
		if parent.Content[i].Value == last {
			return parent.Content[i].Line
		}
	}
	return 0
}

// keyOrigins finds the layer that set each of p's keys.
func (ls *layers) keyOrigins(p Profile, opts Options) ([]KeyOrigin, error) {
	docs, err := ls.docs(p, opts)
	if err != nil {
		return nil, err
	}
	// last is the origin of a key that later layers override: the last
	// layer that sets it.
	last := func(key, value string, keys ...string) KeyOrigin {
		o := KeyOrigin{Key: key, Value: value}
		for i := len(docs) - 1; i >= 0; i-- {
			if line := docs[i].keyLine(keys...); line > 0 {
				o.File, o.Line = docs[i].file, line
				break
			}
		}
		return o
	}
	out := []KeyOrigin{
		last("hostname", p.Hostname, "hostname"),
		last("groups", strings.Join(p.Groups, ", "), "groups"),
		last("talos.version", p.Talos.Version, "talos", "version"),
		last("talos.schematic", p.Talos.Schematic, "talos", "schematic"),
		last("talos.arch", string(p.Talos.Arch), "talos", "arch"),
		last("install", string(p.Install), "install"),
		last("config", p.Config, "config"),
	}
	// Patches append across layers, in stack order: each item comes from
	// the layer that lists it.
	i := 0
	for _, d := range docs {
		if n := d.at("patches"); n != nil && n.Kind == yaml.SequenceNode {
			for _, item := range n.Content {
				out = append(out, KeyOrigin{Key: fmt.Sprintf("patches[%d]", i), Value: item.Value, File: d.file, Line: item.Line})
				i++
			}
		}
	}
	// A kernel argument comes from the last layer that lists it (a later
	// "-name" removes the earlier ones).
	for i, a := range p.KernelArgs {
		o := KeyOrigin{Key: fmt.Sprintf("kernelArgs[%d]", i), Value: a}
		for j := len(docs) - 1; j >= 0 && o.File == ""; j-- {
			if n := docs[j].at("kernelArgs"); n != nil && n.Kind == yaml.SequenceNode {
				for _, item := range n.Content {
					if item.Value == a {
						o.File, o.Line = docs[j].file, item.Line
					}
				}
			}
		}
		out = append(out, o)
	}
	valueLeaves(p.Values, nil, func(path []string, v any) {
		out = append(out, last("values."+strings.Join(path, "."), valueText(v), append([]string{"values"}, path...)...))
	})
	return out, nil
}

// valueLeaves calls fn for every leaf of values, sorted by key: anything
// but a non-empty map, since layers merge maps key by key and replace
// everything else.
func valueLeaves(m map[string]any, path []string, fn func([]string, any)) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		p := append(path[:len(path):len(path)], k)
		if sub, ok := m[k].(map[string]any); ok && len(sub) > 0 {
			valueLeaves(sub, p, fn)
			continue
		}
		fn(p, m[k])
	}
}

// valueText writes a value of values: a string as it is, anything else
// as JSON.
func valueText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
