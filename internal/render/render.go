// Package render builds a Talos machine config from a base config and
// patches (docs/profiles.md): each file is a Go template over the
// machine's data, the patches are applied in order with the semantics of
// `talosctl machineconfig patch` (strategic merge, or RFC 6902 JSON patch
// when a document is a list of operations), the install image and hostname
// are filled in when the config leaves them unset, and the result is checked
// and written as deterministic YAML.
//
// Talos' own config types and patcher (siderolabs/talos/pkg/machinery) are
// not available to this project's build, so the patch semantics and the
// checks are implemented here, over plain YAML values.
package render

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/internal/secrets"
)

// Data is what base configs and patches see as template data
// (docs/profiles.md, "Templates"): .Machine.MAC, .Machine.Hostname,
// .Machine.Arch, .Values, .Talos.Version, .Talos.SchematicID and
// .Talos.InstallerImage.
type Data struct {
	Machine MachineData
	Values  map[string]any
	Talos   TalosData
}

// MachineData is .Machine: the machine's MAC (lower case, '-' separated),
// hostname and architecture (amd64 | arm64).
type MachineData struct {
	MAC, Hostname, Arch string
}

// TalosData is .Talos: the resolved Talos version, schematic ID and
// installer image.
type TalosData struct {
	Version, SchematicID, InstallerImage string
}

func (d Data) templateData() Data {
	if d.Values == nil {
		d.Values = map[string]any{}
	}
	return d
}

// File is one template file: its name as problems show it (a path) and
// its text.
type File struct {
	Name string
	Text []byte
}

// Input is everything one machine's config is rendered from.
type Input struct {
	// Base is the base machine config (configs/<name>.yaml).
	Base File
	// Patches are applied in order; each may hold several documents.
	Patches []File
	Data    Data
	// InstallerImage fills machine.install.image when the config leaves it
	// empty; Hostname fills machine.network.hostname likewise. Empty
	// strings fill nothing.
	InstallerImage string
	Hostname       string
	// RequireDisk asks for machine.install.disk or diskSelector (the
	// machine installs to disk: install: once).
	RequireDisk bool
	// Secrets, when set, is the cluster's secrets bundle: its PKI and
	// tokens are filled into the v1alpha1 document (secrets.Fills), and a
	// secret the config carries itself is a problem. SecretsFile names the
	// bundle in problems.
	Secrets     *secrets.Bundle
	SecretsFile string
	// Facts, when not nil, receives what the checks across machines
	// compare (hostname, static addresses, VIPs, endpoint), whenever the
	// config could be built, even when it has problems.
	Facts *Facts
	// Templates, when not nil, classifies and parses Base and Patches once
	// for every render that shares it; nil parses them for this render.
	Templates *Templates
}

// Problem is one thing wrong with a rendered config, located as well as
// known: the file that introduced the value, its line, and the YAML path.
type Problem struct {
	File string
	Line int
	// Path is the YAML path in the rendered config, e.g.
	// machine.network.interfaces[0].addresses[1].
	Path string
	Msg  string
	// Warning marks something Talos accepts but that is likely a mistake or
	// deprecated (a v1.12 field with a replacement, say): it is reported,
	// and the config is still served.
	Warning bool

	segs  []string // Path, split, inside the document
	value any      // the offending value, when there is one
	doc   Map      // the document, when not the v1alpha1 one
}

func (p *Problem) Error() string {
	if p.Warning {
		return problem.Format(p.File, p.Line, p.Path, "warning: "+p.Msg)
	}
	return problem.Format(p.File, p.Line, p.Path, p.Msg)
}

// source is one parsed document and the file it came from.
type source struct {
	file string
	doc  any
	node nodeRef
}

// Render renders a machine config. The error joins every Problem found
// that is not a warning; nothing is returned with it. Warnings are
// dropped: Check returns them.
func Render(in Input) ([]byte, error) {
	out, _, err := Check(in)
	return out, err
}

// Check renders a machine config like Render and also returns the
// warnings about it (Problems with Warning set, located like errors). On
// error it returns the errors joined, and the warnings found with them.
func Check(in Input) (out []byte, warnings []*Problem, err error) {
	docs, origins, notes, err := build(in)
	warnings = notes
	if err != nil {
		return nil, warnings, err
	}
	sp := fillSecrets(docs, in)
	docs = fill(docs, in)
	in.Facts.collect(docs, origins)
	var errs []error
	for _, p := range append(sp, validate(docs, in)...) {
		origins.locate(p)
		if p.Warning {
			warnings = append(warnings, p)
		} else {
			errs = append(errs, p)
		}
	}
	if len(errs) > 0 {
		return nil, warnings, errors.Join(errs...)
	}
	out, err = encodeDocs(docs)
	return out, warnings, err
}

// build renders the base and the patches and applies the patches. notes
// are warnings about files read as plain YAML though they hold {{ }}.
// The base's documents are copied before anything changes them; the
// patches' are only read (a merge copies what it takes from a patch), so
// both may be shared with other renders through in.Templates.
func build(in Input) (_ []any, _ origins, notes []*Problem, _ error) {
	ts := in.Templates
	if ts == nil {
		ts = &Templates{}
	}
	var org origins
	parsed, nodes, err := expandParse(ts, in.Base, in.Data, &notes)
	if err != nil {
		return nil, nil, notes, err
	}
	if len(parsed) == 0 {
		return nil, nil, notes, &Problem{File: in.Base.Name, Msg: "base config is empty"}
	}
	docs := make([]any, len(parsed))
	for i, d := range parsed {
		if _, ok := d.(Map); !ok {
			return nil, nil, notes, &Problem{File: in.Base.Name, Line: nodes[i].Line, Msg: "a config document must be a map"}
		}
		docs[i] = deepCopy(d)
		org = append(org, source{in.Base.Name, d, nodeRef{nodes[i]}})
	}
	for _, p := range in.Patches {
		pdocs, pnodes, err := expandParse(ts, p, in.Data, &notes)
		if err != nil {
			return nil, nil, notes, err
		}
		for i, pd := range pdocs {
			line := pnodes[i].Content[0].Line
			if ops, ok := jsonPatchOps(pd); ok {
				docs, err = applyJSONPatch(docs, ops)
			} else if m, ok := pd.(Map); ok {
				docs, err = applyStrategic(docs, m)
			} else {
				err = errors.New("a patch document must be a map (strategic merge) or a list of op/path/value operations (RFC 6902)")
			}
			if err != nil {
				return nil, nil, notes, &Problem{File: p.Name, Line: line, Msg: err.Error()}
			}
			org = append(org, source{p.Name, pd, nodeRef{pnodes[i]}})
		}
	}
	return docs, org, notes, nil
}

// expandParse expands f (expand) and parses the text, through ts: the
// documents and nodes returned are shared and must not be changed.
func expandParse(ts *Templates, f File, data Data, notes *[]*Problem) ([]any, []*yaml.Node, error) {
	pf := ts.file(f)
	text, err := expand(pf, f, data, notes)
	if err != nil {
		return nil, nil, err
	}
	docs, nodes, err := pf.parse(text)
	if err != nil {
		return nil, nil, yamlProblem(f.Name, err)
	}
	return docs, nodes, nil
}

// expand returns f's text as YAML: executed over data when classify says
// it is a template, as written otherwise (with a note when it holds {{ }}
// that were left alone). pf is f classified and parsed (Templates.file).
func expand(pf *parsedFile, f File, data Data, notes *[]*Problem) ([]byte, error) {
	if pf.note != "" {
		*notes = append(*notes, &Problem{File: f.Name, Line: 1, Msg: pf.note, Warning: true})
	}
	if !pf.tmpl {
		return f.Text, nil
	}
	err := pf.err
	var text []byte
	if err == nil {
		text, err = run(pf.t, data)
	}
	if err != nil {
		return nil, templateProblem(f.Name, err)
	}
	return text, nil
}

// applyStrategic merges a patch document into the document it addresses
// (docs are the render's own, changed in place; patch is only read):
// one with the same kind (and apiVersion and name, when the patch has
// them), or the v1alpha1 document when the patch has no kind. A kind with
// no document is appended, as talosctl does.
func applyStrategic(docs []any, patch Map) ([]any, error) {
	kind, hasKind := patch.Get("kind")
	if s, ok := kind.(string); hasKind && (!ok || s == "") {
		return nil, fmt.Errorf("kind: want the document's kind as a string, such as LinkConfig, not %s", describe(kind))
	}
	if !hasKind {
		i := mainDoc(docs)
		if isDelete(patch) {
			return nil, errors.New("the v1alpha1 document cannot be deleted")
		}
		if i < 0 {
			return nil, errors.New("patch has no kind, and the config has no v1alpha1 document to merge it into")
		}
		v, err := mergeOwned(docs[i], patch)
		if err != nil {
			return nil, err
		}
		docs[i] = v
		return docs, nil
	}
	for i := 0; i < len(docs); i++ {
		d := docs[i].(Map)
		if !sameDoc(d, patch, kind) {
			continue
		}
		if isDelete(patch) {
			docs = append(docs[:i:i], docs[i+1:]...)
			i--
			continue
		}
		v, err := mergeOwned(d, patch)
		if err != nil {
			return nil, err
		}
		docs[i] = v
		return docs, nil
	}
	if isDelete(patch) {
		return docs, nil
	}
	if err := checkDirectives(patch, nil); err != nil {
		return nil, err
	}
	return append(docs, clean(patch)), nil
}

// describe names a value's YAML kind for a message: a map, a list, the
// empty string, or the scalar itself.
func describe(v any) string {
	switch v := v.(type) {
	case Map:
		return "a map"
	case []any:
		return "a list"
	case nil:
		return "null"
	case string:
		if v == "" {
			return "an empty string"
		}
	}
	return fmt.Sprintf("%v", v)
}

// sameDoc says whether document d is the one patch, of the given kind,
// addresses: the same kind, and the same apiVersion and name where the
// patch gives them. Values are compared with equal, never with ==, since a
// document may hold a map where a kind should be.
func sameDoc(d, patch Map, kind any) bool {
	if k, _ := d.Get("kind"); !equal(k, kind) {
		return false
	}
	for _, key := range []string{"apiVersion", "name"} {
		if pv, ok := patch.Get(key); ok {
			if dv, _ := d.Get(key); !equal(dv, pv) {
				return false
			}
		}
	}
	return true
}

// mainDoc returns the index of the v1alpha1 document (the one with
// `version: v1alpha1` and no kind), or -1.
func mainDoc(docs []any) int {
	for i, d := range docs {
		m, ok := d.(Map)
		if !ok {
			continue
		}
		if _, ok := m.Get("kind"); ok {
			continue
		}
		if _, ok := m.Get("version"); ok {
			return i
		}
	}
	return -1
}

// fill sets machine.install.image where the config leaves it unset, and
// the profile's hostname (fillHostname). It returns the documents, one
// more when a HostnameConfig document was added.
func fill(docs []any, in Input) []any {
	i := mainDoc(docs)
	if i < 0 {
		return docs
	}
	doc := docs[i].(Map)
	if in.InstallerImage != "" {
		if s, _ := lookup(doc, "machine", "install", "image").(string); s == "" {
			doc = setPath(doc, in.InstallerImage, "machine", "install", "image")
		}
	}
	docs[i] = doc
	if in.Hostname != "" {
		docs = fillHostname(docs, i, in.Hostname, in.Data.Talos.Version)
	}
	return docs
}

// hostnameDocsFrom is the first Talos minor release whose `talosctl gen
// config` names the host in a HostnameConfig document and whose schema
// deprecates machine.network.hostname (Talos v1.12).
const hostnameDocsFrom = 12

// fillHostname puts hostname into the config unless the config names the
// host itself (docs/profiles.md, "Hostname"):
//   - a HostnameConfig document with a hostname, or a non-empty
//     machine.network.hostname, wins: nothing changes;
//   - a HostnameConfig document without one (`auto: stable`, as talosctl
//     writes it from v1.12) gets hostname, and loses `auto`, which Talos
//     refuses beside a hostname;
//   - otherwise the main document's machine.network.hostname is set for
//     Talos before v1.12, and a HostnameConfig document is appended from
//     v1.12 on (and for a version that does not parse).
func fillHostname(docs []any, main int, hostname, version string) []any {
	if s, _ := lookup(docs[main], "machine", "network", "hostname").(string); s != "" {
		return docs
	}
	for i, d := range docs {
		m := d.(Map)
		if k, _ := m.Get("kind"); k != "HostnameConfig" {
			continue
		}
		if s, _ := m.Get("hostname"); s != nil && s != "" {
			return docs
		}
		docs[i] = m.Delete("auto").Set("hostname", hostname)
		return docs
	}
	if minor, ok := talosMinor(version); ok && minor < hostnameDocsFrom {
		docs[main] = setPath(docs[main].(Map), hostname, "machine", "network", "hostname")
		return docs
	}
	return append(docs, Map{{"apiVersion", "v1alpha1"}, {"kind", "HostnameConfig"}, {"hostname", hostname}})
}

// talosMinor returns the minor release of a Talos version of major 1
// ("v1.12.7" → 12); ok is false for anything else.
func talosMinor(version string) (minor int, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimPrefix(version, "v"), "1.")
	if !found {
		return 0, false
	}
	n, _, _ := strings.Cut(rest, ".")
	minor, err := strconv.Atoi(n)
	return minor, err == nil && minor >= 0
}

// lookup returns the value at a key path, or nil.
func lookup(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(Map)
		if !ok {
			return nil
		}
		v, _ = m.Get(k)
	}
	return v
}

// setPath sets the value at a key path, creating maps on the way (and
// replacing anything on the way that is not a map).
func setPath(m Map, v any, keys ...string) Map {
	if len(keys) == 1 {
		return m.Set(keys[0], v)
	}
	sub, _ := m.Get(keys[0])
	sm, _ := sub.(Map)
	return m.Set(keys[0], setPath(sm, v, keys[1:]...))
}

// templateProblem turns a text/template error ("template: NAME:LINE:COL:
// msg" or "template: NAME:LINE: msg") into a Problem with its line.
func templateProblem(file string, err error) *Problem {
	msg := err.Error()
	prefix := "template: " + file + ":"
	rest, ok := strings.CutPrefix(msg, prefix)
	if !ok {
		return &Problem{File: file, Msg: msg}
	}
	lineStr, after, _ := strings.Cut(rest, ":")
	line, err2 := strconv.Atoi(lineStr)
	if err2 != nil {
		return &Problem{File: file, Msg: msg}
	}
	// Drop a column and the repeated template name, keep the message.
	if col, tail, ok := strings.Cut(after, ":"); ok {
		if _, err := strconv.Atoi(col); err == nil {
			after = tail
		}
	}
	after = strings.TrimSpace(after)
	if _, tail, ok := strings.Cut(after, ": "); ok && strings.HasPrefix(after, "executing \"") {
		after = tail
	}
	return &Problem{File: file, Line: line, Msg: "template: " + after}
}

// yamlProblem turns a YAML error ("yaml: line N: msg", or "line N: msg"
// from fromNode) into a Problem with its line. Lines are those of the
// rendered template, which match the file's unless a template function
// added lines.
func yamlProblem(file string, err error) *Problem {
	line, msg := problem.YAML(err)
	return &Problem{File: file, Line: line, Msg: "YAML: " + msg}
}
