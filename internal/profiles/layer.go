package profiles

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// kind is the kind of a layer file, which decides the keys it may have.
type kind int

const (
	defaultsLayer kind = iota
	groupLayer
	machineLayer
)

// layer is one parsed layer file (defaults, group or machine). Pointers
// and nil slices are keys the file does not set.
type layer struct {
	file string

	hostname   *string
	groups     []string
	version    *string
	schematic  *string
	arch       *machine.Arch
	install    *machine.Install
	config     *string
	secrets    *string
	patches    []string
	kernelArgs []string
	values     map[string]any
	unknown    *machine.Unknown

	// lines maps a key ("talos.version") to its line, for messages.
	lines map[string]int
}

// keysOf are the keys each kind of layer file may have.
func keysOf(k kind) []string {
	keys := []string{"talos", "install", "config", "secrets", "patches", "kernelArgs", "values"}
	switch k {
	case defaultsLayer:
		keys = append(keys, "unknown")
	case machineLayer:
		keys = append(keys, "hostname", "groups")
	}
	return keys
}

var talosKeys = []string{"version", "schematic", "arch"}

// name is what group, config, patch and schematic names may be: a file
// name without directories.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// hostnameRE is an RFC 1123 host name, as Talos accepts for
// machine.network.hostname.
var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

var versionRE = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)

var hexIDRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// parseLayer checks one layer file, of content data. Every problem found
// is returned, joined.
func parseLayer(path string, data []byte, k kind) (*layer, error) {
	l := &layer{file: path, lines: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, yamlProblem(path, err)
	}
	if len(doc.Content) == 0 {
		return l, nil // an empty file is an empty layer
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Problem{File: path, Line: root.Line, Msg: "want a map of keys (talos, install, config, patches, kernelArgs, values…)"}
	}
	var errs []error
	bad := func(n *yaml.Node, format string, args ...any) {
		errs = append(errs, &Problem{File: path, Line: n.Line, Msg: fmt.Sprintf(format, args...)})
	}
	decode := func(key string, n *yaml.Node, into any) bool {
		if err := n.Decode(into); err != nil {
			bad(n, "%s: %s", key, typeMessage(err))
			return false
		}
		return true
	}
	allowed := keysOf(k)
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		kn, vn := root.Content[i], root.Content[i+1]
		key := kn.Value
		if seen[key] {
			bad(kn, "%s: set twice", key)
			continue
		}
		seen[key] = true
		l.lines[key] = kn.Line
		if !slices.Contains(allowed, key) {
			bad(kn, "unknown key %q (%s)", key, keyHint(key, k))
			continue
		}
		switch key {
		case "hostname":
			var s string
			if decode(key, vn, &s) {
				if !hostnameRE.MatchString(s) {
					bad(vn, "hostname %q: want a lower-case RFC 1123 host name (letters, digits, '-', '.')", s)
				}
				l.hostname = &s
			}
		case "groups":
			if decode(key, vn, &l.groups) {
				for _, g := range l.groups {
					if !nameRE.MatchString(g) {
						bad(vn, "groups: %q is not a file name under groups/", g)
					}
				}
			}
		case "talos":
			l.parseTalos(vn, bad, decode)
		case "install":
			var s string
			if decode(key, vn, &s) {
				if m, err := machine.ParseInstall(s); err != nil {
					bad(vn, "install: %q: want once, always or never", s)
				} else {
					l.install = &m
				}
			}
		case "config":
			var s string
			if decode(key, vn, &s) {
				if !nameRE.MatchString(s) {
					bad(vn, "config: %q is not a file name under configs/", s)
				}
				l.config = &s
			}
		case "secrets":
			var s string
			if decode(key, vn, &s) {
				if !nameRE.MatchString(s) {
					bad(vn, "secrets: %q is not a file name under secrets/", s)
				}
				l.secrets = &s
			}
		case "patches":
			if decode(key, vn, &l.patches) {
				if l.patches == nil {
					l.patches = []string{}
				}
				for _, p := range l.patches {
					if !nameRE.MatchString(p) {
						bad(vn, "patches: %q is not a file name under patches/", p)
					}
				}
			}
		case "kernelArgs":
			if decode(key, vn, &l.kernelArgs) {
				if l.kernelArgs == nil {
					l.kernelArgs = []string{}
				}
				for _, a := range l.kernelArgs {
					if a == "" || a == "-" || strings.ContainsAny(a, " \t\r\n") {
						bad(vn, "kernelArgs: %q: want one argument (name or name=value, or -name to remove one), without spaces", a)
					}
				}
			}
		case "values":
			var v map[string]any
			if decode(key, vn, &v) {
				if v == nil {
					v = map[string]any{}
				}
				l.values = v
			}
		case "unknown":
			var s string
			if decode(key, vn, &s) {
				if u, err := machine.ParseUnknown(s); err != nil {
					bad(vn, "unknown: %q: want maintenance, local or ignore", s)
				} else {
					l.unknown = &u
				}
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return l, nil
}

func (l *layer) parseTalos(n *yaml.Node, bad func(*yaml.Node, string, ...any), decode func(string, *yaml.Node, any) bool) {
	if n.Kind != yaml.MappingNode {
		bad(n, "talos: want a map with version, schematic and arch")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := "talos." + kn.Value
		if !slices.Contains(talosKeys, kn.Value) {
			bad(kn, "unknown key %q (talos has version, schematic and arch)", key)
			continue
		}
		l.lines[key] = kn.Line
		var s string
		if !decode(key, vn, &s) {
			continue
		}
		switch kn.Value {
		case "version":
			if !versionRE.MatchString(s) {
				bad(vn, "talos.version: %q: want a Talos version such as v1.12.7", s)
				continue
			}
			if !strings.HasPrefix(s, "v") {
				s = "v" + s
			}
			l.version = &s
		case "schematic":
			if !hexIDRE.MatchString(s) && !nameRE.MatchString(s) {
				bad(vn, "talos.schematic: %q: want a file name under schematics/ or a 64-hex schematic ID", s)
				continue
			}
			l.schematic = &s
		case "arch":
			a, err := machine.ParseArch(s)
			if err != nil {
				bad(vn, "talos.arch: %q: want amd64 or arm64", s)
				continue
			}
			l.arch = &a
		}
	}
}

// keyHint explains which keys a file may have.
func keyHint(key string, k kind) string {
	switch {
	case (key == "hostname" || key == "groups") && k != machineLayer:
		return "only a machine file may set " + key
	case key == "unknown" && k != defaultsLayer:
		return "only defaults.yaml may set unknown"
	}
	return "known: " + strings.Join(keysOf(k), ", ")
}

// typeMessage shortens a yaml.v3 decoding error to its message.
func typeMessage(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if _, tail, ok := strings.Cut(rest, ": "); ok {
				msg = tail
			}
		}
		return msg
	}
	return err.Error()
}

// yamlProblem turns a YAML syntax error into a Problem with its line.
func yamlProblem(file string, err error) *Problem {
	line, msg := problem.YAML(err)
	return &Problem{File: file, Line: line, Msg: "YAML: " + msg}
}
