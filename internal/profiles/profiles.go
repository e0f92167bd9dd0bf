// Package profiles loads the profiles directory (docs/profiles.md): defaults,
// groups and one file per machine, layered into each machine's effective
// profile (Talos version, schematic, arch, install mode, base config,
// patches, kernel arguments, values), and renders every machine's config
// with package render. A Set is one loaded, fully checked directory; a
// Store keeps the Set being served and replaces it when the directory
// changes and the new one loads without a problem.
package profiles

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
	"github.com/tinderbox-boot/tinderbox/internal/render"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// SchematicResolver turns an Image Factory schematic (the YAML of
// schematics/<name>.yaml) into its schematic ID. *factory.Client implements
// it, remembering IDs so that it answers without the factory.
type SchematicResolver interface {
	SchematicID(ctx context.Context, schematic []byte) (string, error)
}

// Problem is one thing wrong with the profiles: the file and line at
// fault where known, and the machine whose config it breaks where it is
// one machine's.
type Problem struct {
	Machine string
	File    string
	Line    int
	Msg     string
}

func (p *Problem) Error() string {
	subject := ""
	if p.Machine != "" {
		subject = "machine " + p.Machine
	}
	return problem.Format(p.File, p.Line, subject, p.Msg)
}

// LoadError is the error of a Load whose layers parsed: every problem
// found, joined (Unwrap), and what did load, so that a caller such as
// validate can check further and report everything at once.
type LoadError struct {
	// Machines are the profiles of the machines whose configs rendered
	// without an error, by MAC.
	Machines []Profile
	// Warnings are the warnings found, as Set.Warnings.
	Warnings []error
	errs     []error
}

func (e *LoadError) Error() string { return errors.Join(e.errs...).Error() }

// Unwrap returns every problem found.
func (e *LoadError) Unwrap() []error { return e.errs }

// ErrUnknownMachine is returned by Render for a MAC without a profile.
var ErrUnknownMachine = errors.New("no profile for this machine")

// Talos is a profile's Talos image.
type Talos struct {
	// Version is the Talos version, with its leading "v" (v1.12.7).
	Version string
	// Schematic is the schematic as the profile names it: a name under
	// schematics/ or a 64-hex ID.
	Schematic string
	// SchematicID is the resolved 64-hex schematic ID.
	SchematicID string
	// Arch is amd64 or arm64, or empty when no layer sets it: the booting
	// machine's own architecture is used then (and templates see "").
	Arch machine.Arch
}

// Profile is a machine's effective profile: defaults, then its groups in
// order, then its own file.
type Profile struct {
	// MAC is the machine's; its file is machines/<MAC.Dashed()>.yaml.
	MAC      machine.MAC
	Hostname string
	Groups   []string
	Talos    Talos
	// Install is once (default), always or never.
	Install machine.Install
	// Config names the base config, configs/<Config>.yaml.
	Config string
	// Secrets names the secrets bundle, secrets/<Secrets>.yaml; empty
	// means secrets.yaml at the top of the directory, when there is one.
	Secrets string `yaml:",omitempty"`
	// Patches name patches/<name>.yaml, in the order they apply.
	Patches []string
	// KernelArgs are the arguments appended to the factory's command line,
	// across layers: an argument "-name" has removed the earlier ones named
	// name, and is kept so that it also removes name from the factory's
	// command line (boot.KernelArgs).
	KernelArgs []string
	Values     map[string]any
	// File is the machine's file.
	File string
}

// Options configures Load and NewStore.
type Options struct {
	// Dir is the profiles directory (config profiles.dir).
	Dir string
	// Schematics resolves schematic names to IDs; nil accepts only 64-hex
	// IDs.
	Schematics SchematicResolver
	// FactoryURL is the Image Factory's URL; its host makes the installer
	// image, <factory host>/installer/<schematic id>:<version>.
	FactoryURL string
	// BaseURL is the boot HTTP address nodes use (http://192.168.1.5:8080).
	// When set, each rendered config starts with a comment naming its
	// token-free URL, BaseURL/config/<mac>.
	BaseURL string
	// Overlay, when set, makes Load read the directory as if each layer
	// file named here (by its path under Dir: "defaults.yaml",
	// "groups/<name>.yaml", "machines/<mac>.yaml") held the given bytes,
	// or did not exist when they are nil. The files on disk are not
	// touched: the admin API checks an edit this way before writing it.
	Overlay map[string][]byte
	// RenderCache, when set, is a file of renders kept across restarts
	// (rendercache.go; the daemon's is under state.dir): Load and
	// NewStore take from it every machine's render whose inputs, and the
	// build, are the ones it was made with, instead of rendering it
	// again. Load only reads it; a Store writes each good load's renders
	// to it. It holds the configs with the secrets they carry (mode 0600).
	RenderCache string
}

// Set is one loaded profiles directory in which every machine rendered
// without a problem. It is immutable and safe for concurrent use.
type Set struct {
	unknown     machine.Unknown
	maintenance Talos
	machines    map[machine.MAC]*entry
	loadedAt    time.Time
	stamp       string
	// hash is the digest of the set's input files (Hash).
	hash     string
	warnings []error
	// maintenanceArgs are defaults.yaml's kernelArgs (MaintenanceArgs).
	maintenanceArgs []string
	// rendered are the machines this load rendered rather than took
	// from the memo of the load before, by MAC (for tests).
	rendered []machine.MAC
}

// entry is one machine of a Set: its profile and rendered config.
type entry struct {
	profile Profile
	config  []byte
}

// Warnings are the things found at load that Talos accepts but that are
// likely mistakes (each a *Problem whose Msg starts with "warning: "),
// in machine order, then those across machines. The configs are served
// all the same.
func (s *Set) Warnings() []error { return slices.Clone(s.warnings) }

// Unknown is the policy for machines without a profile (defaults.yaml
// `unknown`; maintenance when unset).
func (s *Set) Unknown() machine.Unknown { return s.unknown }

// Maintenance is the Talos image an unknown machine boots under
// `unknown: maintenance`: the version, schematic and arch defaults.yaml
// sets (any of them may be empty).
func (s *Set) Maintenance() Talos { return s.maintenance }

// MaintenanceArgs are the kernel arguments of a maintenance boot:
// defaults.yaml's kernelArgs, which apply to every machine, known or not.
func (s *Set) MaintenanceArgs() []string { return slices.Clone(s.maintenanceArgs) }

// LoadedAt is when the set was loaded.
func (s *Set) LoadedAt() time.Time { return s.loadedAt }

// Hash is the profile set's hash: the hex SHA-256 of the directory's
// input files by path and content (64 characters), computed when the set
// loaded. Two replicas that loaded the same tree have the same hash,
// whatever the files' modification times; a change of one byte of one
// input changes it. See setHash for what is covered.
func (s *Set) Hash() string { return s.hash }

// Len is the number of machines with a profile.
func (s *Set) Len() int { return len(s.machines) }

// Machine returns the profile of mac; ok is false when it has none.
func (s *Set) Machine(mac machine.MAC) (p Profile, ok bool) {
	m, ok := s.machines[mac]
	if !ok {
		return Profile{}, false
	}
	return m.profile, true
}

// Machines returns every profile, by MAC.
func (s *Set) Machines() []Profile {
	out := make([]Profile, 0, len(s.machines))
	for _, m := range s.machines {
		out = append(out, m.profile)
	}
	slices.SortFunc(out, func(a, b Profile) int { return compareMAC(a.MAC, b.MAC) })
	return out
}

// Render returns mac's machine config, exactly as it is served. Configs
// are rendered and checked when the set loads, so this only looks one up
// (and copies it: the caller may keep or change the bytes).
func (s *Set) Render(ctx context.Context, mac machine.MAC) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m, ok := s.machines[mac]
	if !ok {
		return nil, fmt.Errorf("profiles: render %s: %w", mac.Dashed(), ErrUnknownMachine)
	}
	return slices.Clone(m.config), nil
}

// layers is a directory's parsed layer files.
type layers struct {
	defaults *layer
	groups   map[string]*layer
	machines map[machine.MAC]*layer
	files    map[string]map[string]string // subdir → name → path
	// broken says defaults.yaml or a group did not parse: machines are
	// then not checked, as their problems would be that one's echoes.
	broken bool
	// bundles are the secrets bundles by name ("" for secrets.yaml).
	bundles map[string]bundle
	// texts are the base configs and patches read, by path (text).
	textMu sync.Mutex
	texts  map[string]fileText
	// sums are the SHA-256 of the layer files and secrets bundles as
	// read for this load, by path, for setHash.
	sumMu sync.Mutex
	sums  map[string][sha256.Size]byte
}

// Load reads, checks and renders the whole directory, then checks the
// machines against each other (duplicate hostnames and static addresses,
// the control-plane endpoint). The error joins every problem found (each
// a *Problem), and is a *LoadError once the layers parsed; no Set comes
// with it. Machines are rendered on up to GOMAXPROCS goroutines; the
// problems and warnings come in machine order all the same. Load blocks
// while schematic names are resolved.
func Load(ctx context.Context, opts Options) (*Set, error) {
	set, _, err := load(ctx, opts, readRenders(opts.RenderCache, slog.New(slog.DiscardHandler)))
	return set, err
}

// load is Load, parsing and rendering only what the memo prev of an
// earlier load (nil for none) does not hold. It returns this load's
// memo, with every entry it used, also when the load fails.
func load(ctx context.Context, opts Options, prev *memo) (*Set, *memo, error) {
	return loadStamped(ctx, opts, prev, "")
}

// loadStamped is load with the directory's fingerprint taken by the
// caller just before ("" to take it now): taken before any file is read,
// it makes a change made while the load reads differ from the set's stamp.
func loadStamped(ctx context.Context, opts Options, prev *memo, stamp string) (*Set, *memo, error) {
	lo := newLoader(prev)
	if stamp == "" {
		var err error
		if stamp, err = fingerprint(opts.Dir); err != nil {
			return nil, lo.next, err
		}
	}
	if err := checkOverlay(opts.Overlay); err != nil {
		return nil, lo.next, err
	}
	ls, errs := readLayers(opts.Dir, opts.Overlay, lo)
	if ls == nil || ls.broken {
		return nil, lo.next, errors.Join(errs...)
	}
	set := &Set{unknown: machine.UnknownMaintenance, machines: map[machine.MAC]*entry{}, stamp: stamp}
	var err error
	if set.hash, err = ls.setHash(opts.Dir, opts.Overlay); err != nil {
		errs = append(errs, err)
	}
	if ls.defaults != nil && ls.defaults.unknown != nil {
		set.unknown = *ls.defaults.unknown
	}
	ids := map[string]result{}
	if d := ls.defaults; d != nil {
		setIf(&set.maintenance.Version, d.version)
		setIf(&set.maintenance.Schematic, d.schematic)
		setIf(&set.maintenance.Arch, d.arch)
		set.maintenanceArgs = slices.Clone(d.kernelArgs)
		if d.schematic != nil {
			id, err := ls.resolve(ctx, opts.Schematics, *d.schematic, ids)
			if err != nil {
				errs = append(errs, &Problem{File: d.file, Line: d.lines["talos.schematic"], Msg: err.Error()})
			}
			set.maintenance.SchematicID = id
		}
	}
	host := factoryHost(opts.FactoryURL)
	// Each machine, in MAC order: the problems of its profile, or its
	// render (done on every core below); reported in this order.
	type slot struct {
		p      Profile
		errs   []error
		render bool
		r      *rendered
	}
	macs := slices.SortedFunc(maps.Keys(ls.machines), compareMAC)
	slots := make([]slot, len(macs))
	var jobs []int
	for i, mac := range macs {
		sl := &slots[i]
		p, perrs := ls.effective(mac)
		if len(perrs) > 0 {
			sl.errs = perrs
			continue
		}
		if b, ok := ls.bundles[p.Secrets]; ok && b.bundle == nil {
			continue // the bundle's problems are reported once
		}
		id, err := ls.resolve(ctx, opts.Schematics, p.Talos.Schematic, ids)
		if errors.Is(err, errReported) {
			continue
		}
		if err != nil {
			sl.errs = []error{&Problem{Machine: mac.Dashed(), File: ls.setter(p, "talos.schematic"), Line: ls.line(p, "talos.schematic"), Msg: err.Error()}}
			continue
		}
		p.Talos.SchematicID = id
		sl.p, sl.render = p, true
		jobs = append(jobs, i)
	}
	each(len(jobs), func(j int) {
		sl := &slots[jobs[j]]
		sl.r = lo.render(ls, sl.p, host, opts.BaseURL)
	})
	var fl fleet
	for i := range slots {
		sl := &slots[i]
		errs = append(errs, sl.errs...)
		if !sl.render {
			continue
		}
		fl.add(ls, sl.p, sl.r.facts)
		set.warnings = append(set.warnings, sl.r.warnings...)
		if sl.r.err != nil {
			errs = append(errs, sl.r.err)
			continue
		}
		set.machines[sl.p.MAC] = &entry{profile: sl.p, config: sl.r.config}
	}
	set.rendered = lo.renderedMACs()
	fleetErrs, fleetWarns := fl.check()
	errs = append(errs, fleetErrs...)
	set.warnings = append(set.warnings, fleetWarns...)
	if len(errs) > 0 {
		return nil, lo.next, &LoadError{Machines: set.Machines(), Warnings: set.warnings, errs: errs}
	}
	set.loadedAt = time.Now()
	return set, lo.next, nil
}

func compareMAC(a, b machine.MAC) int { return bytes.Compare(a[:], b[:]) }

// checkOverlay refuses an overlay path that is not a layer file's.
func checkOverlay(overlay map[string][]byte) error {
	for rel := range overlay {
		sub, name, nested := strings.Cut(rel, "/")
		ok := rel == "defaults.yaml" ||
			(nested && (sub == "groups" || sub == "machines") && strings.HasSuffix(name, ".yaml") &&
				!strings.ContainsAny(name, `/\`) && !strings.HasPrefix(name, "."))
		if !ok {
			return fmt.Errorf("profiles: overlay %q: only defaults.yaml, groups/<name>.yaml and machines/<mac>.yaml can be overlaid", rel)
		}
	}
	return nil
}

// readLayers reads every layer file, as overlay changes them, and lists
// the other files; machine files are read on every core. A layer the
// loader's memo holds is not parsed again (lo may be nil). It returns nil
// layers when the directory itself cannot be read.
func readLayers(dir string, overlay map[string][]byte, lo *loader) (*layers, []error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, []error{&Problem{File: dir, Msg: "profiles directory: " + err.Error()}}
	}
	var errs []error
	ls := &layers{groups: map[string]*layer{}, machines: map[machine.MAC]*layer{}, files: map[string]map[string]string{}}
	read := func(path string, k kind) (*layer, error) {
		rel, err := filepath.Rel(dir, path)
		if err == nil {
			if data, ok := overlay[filepath.ToSlash(rel)]; ok {
				ls.keepSum(path, sha256.Sum256(data))
				return lo.parse(path, data, k)
			}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, &Problem{File: path, Msg: err.Error()}
		}
		ls.keepSum(path, sha256.Sum256(data))
		return lo.parse(path, data, k)
	}
	defaults := filepath.Join(dir, "defaults.yaml")
	data, over := overlay["defaults.yaml"]
	if _, err := os.Stat(defaults); (err == nil && !over) || data != nil {
		l, err := read(defaults, defaultsLayer)
		if err != nil {
			errs = append(errs, err)
			ls.broken = true
		}
		ls.defaults = l
	}
	for _, sub := range []string{"groups", "machines", "schematics", "configs", "patches", "secrets"} {
		files, err := yamlFiles(filepath.Join(dir, sub))
		var p *Problem
		if err != nil && !errors.As(err, &p) {
			err = &Problem{File: filepath.Join(dir, sub), Msg: err.Error()}
		}
		if err != nil {
			errs = append(errs, err)
			ls.broken = true
			continue
		}
		for rel, data := range overlay {
			name, ok := strings.CutPrefix(rel, sub+"/")
			if !ok {
				continue
			}
			name = strings.TrimSuffix(name, ".yaml")
			if data == nil {
				delete(files, name)
			} else {
				files[name] = filepath.Join(dir, sub, name+".yaml")
			}
		}
		ls.files[sub] = files
	}
	for _, name := range slices.Sorted(maps.Keys(ls.files["groups"])) {
		l, err := read(ls.files["groups"][name], groupLayer)
		if err != nil {
			errs = append(errs, err)
			ls.broken = true
			continue
		}
		ls.groups[name] = l
	}
	names := slices.Sorted(maps.Keys(ls.files["machines"]))
	read1 := make([]parsedLayer, len(names))
	each(len(names), func(i int) {
		read1[i].l, read1[i].err = read(ls.files["machines"][names[i]], machineLayer)
	})
	for i, name := range names {
		path := ls.files["machines"][name]
		mac, err := machine.ParseMAC(name)
		if err != nil {
			errs = append(errs, &Problem{File: path, Msg: fmt.Sprintf("the file name %q is not a MAC address: machines/ holds one file per machine, named by its MAC (52-54-00-12-34-56.yaml)", name)})
			continue
		}
		if other, ok := ls.machines[mac]; ok {
			errs = append(errs, &Problem{File: path, Msg: fmt.Sprintf("same MAC as %s", other.file)})
			continue
		}
		l, err := read1[i].l, read1[i].err
		if err != nil {
			errs = append(errs, err)
			ls.machines[mac] = nil
			continue
		}
		ls.machines[mac] = l
	}
	for mac, l := range ls.machines {
		if l == nil {
			delete(ls.machines, mac)
		}
	}
	errs = append(errs, ls.readBundles(dir)...)
	return ls, errs
}

// yamlFiles lists dir's *.yaml files by name without the extension. A
// missing directory has none. Hidden files and editor leftovers are
// skipped.
func yamlFiles(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") {
			continue
		}
		if strings.HasSuffix(n, ".yml") {
			return nil, &Problem{File: filepath.Join(dir, n), Msg: "only *.yaml files are read: rename it to " + strings.TrimSuffix(n, ".yml") + ".yaml"}
		}
		if !strings.HasSuffix(n, ".yaml") {
			continue
		}
		out[strings.TrimSuffix(n, ".yaml")] = filepath.Join(dir, n)
	}
	return out, nil
}

// effective layers defaults, the machine's groups and the machine file
// into its profile: later layers override scalars, patches and kernelArgs
// append, values deep-merge.
func (ls *layers) effective(mac machine.MAC) (Profile, []error) {
	ml := ls.machines[mac]
	p := Profile{MAC: mac, File: ml.file, Install: machine.InstallOnce, Values: map[string]any{}}
	var errs []error
	stack := []*layer{}
	if ls.defaults != nil {
		stack = append(stack, ls.defaults)
	}
	for _, g := range ml.groups {
		gl, ok := ls.groups[g]
		if !ok {
			if _, exists := ls.files["groups"][g]; !exists {
				errs = append(errs, &Problem{Machine: mac.Dashed(), File: ml.file, Line: ml.lines["groups"], Msg: fmt.Sprintf("groups: no file groups/%s.yaml", g)})
			}
			continue
		}
		stack = append(stack, gl)
	}
	stack = append(stack, ml)
	for _, l := range stack {
		if l.hostname != nil {
			p.Hostname = *l.hostname
		}
		p.Groups = append(p.Groups, l.groups...)
		setIf(&p.Talos.Version, l.version)
		setIf(&p.Talos.Schematic, l.schematic)
		setIf(&p.Talos.Arch, l.arch)
		if l.install != nil {
			p.Install = *l.install
		}
		setIf(&p.Config, l.config)
		setIf(&p.Secrets, l.secrets)
		p.Patches = append(p.Patches, l.patches...)
		p.KernelArgs = appendArgs(p.KernelArgs, l.kernelArgs)
		p.Values = deepMerge(p.Values, l.values)
	}
	need := func(v, key, what string) {
		if v == "" {
			errs = append(errs, &Problem{Machine: mac.Dashed(), File: ml.file, Msg: fmt.Sprintf("%s is not set in this file, its groups or defaults.yaml (%s)", key, what)})
		}
	}
	need(p.Talos.Version, "talos.version", "e.g. v1.12.7")
	need(p.Talos.Schematic, "talos.schematic", "a name under schematics/ or a 64-hex ID")
	need(p.Config, "config", "a base config under configs/")
	if p.Config != "" {
		if _, ok := ls.files["configs"][p.Config]; !ok {
			errs = append(errs, &Problem{Machine: mac.Dashed(), File: ls.setter(p, "config"), Line: ls.line(p, "config"), Msg: fmt.Sprintf("config: no file configs/%s.yaml", p.Config)})
		}
	}
	if p.Secrets != "" {
		if _, ok := ls.files["secrets"][p.Secrets]; !ok {
			errs = append(errs, &Problem{Machine: mac.Dashed(), File: ls.setter(p, "secrets"), Line: ls.line(p, "secrets"), Msg: fmt.Sprintf("secrets: no file secrets/%s.yaml", p.Secrets)})
		}
	}
	for _, name := range p.Patches {
		if _, ok := ls.files["patches"][name]; !ok {
			l := ls.patchLayer(p, name)
			errs = append(errs, &Problem{Machine: mac.Dashed(), File: l.file, Line: l.lines["patches"], Msg: fmt.Sprintf("patches: no file patches/%s.yaml", name)})
		}
	}
	if s := p.Talos.Schematic; s != "" && !hexIDRE.MatchString(s) {
		if _, ok := ls.files["schematics"][s]; !ok {
			errs = append(errs, &Problem{Machine: mac.Dashed(), File: ls.setter(p, "talos.schematic"), Line: ls.line(p, "talos.schematic"), Msg: fmt.Sprintf("talos.schematic: no file schematics/%s.yaml (and %q is not a 64-hex schematic ID)", s, s)})
		}
	}
	return p, errs
}

// stack returns the layers of p, defaults first.
func (ls *layers) stack(p Profile) []*layer {
	var out []*layer
	if ls.defaults != nil {
		out = append(out, ls.defaults)
	}
	ml := ls.machines[p.MAC]
	for _, g := range ml.groups {
		if gl, ok := ls.groups[g]; ok {
			out = append(out, gl)
		}
	}
	return append(out, ml)
}

// patchLayer returns the layer of p that lists the patch name.
func (ls *layers) patchLayer(p Profile, name string) *layer {
	st := ls.stack(p)
	for i := len(st) - 1; i > 0; i-- {
		if slices.Contains(st[i].patches, name) {
			return st[i]
		}
	}
	return st[0]
}

// setter returns the last layer file of p that sets key.
func (ls *layers) setter(p Profile, key string) string {
	st := ls.stack(p)
	for i := len(st) - 1; i >= 0; i-- {
		if _, ok := st[i].lines[key]; ok {
			return st[i].file
		}
	}
	return p.File
}

// line returns the line of key in the layer file setter names.
func (ls *layers) line(p Profile, key string) int {
	f := ls.setter(p, key)
	for _, l := range ls.stack(p) {
		if l.file == f {
			return l.lines[key]
		}
	}
	return 0
}

func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// appendArgs appends a layer's kernel arguments: "-name" removes the
// earlier arguments named name and stays (once) in the list.
func appendArgs(args, add []string) []string {
	for _, a := range add {
		if name, ok := strings.CutPrefix(a, "-"); ok {
			args = slices.DeleteFunc(args, func(x string) bool {
				n, _, _ := strings.Cut(x, "=")
				return n == name || x == a
			})
		}
		args = append(args, a)
	}
	return args
}

// deepMerge merges src into a copy of dst: maps merge key by key, anything
// else in src replaces.
func deepMerge(dst, src map[string]any) map[string]any {
	out := make(map[string]any, len(dst)+len(src))
	maps.Copy(out, dst)
	for k, v := range src {
		sm, sok := v.(map[string]any)
		dm, dok := out[k].(map[string]any)
		if sok && dok {
			out[k] = deepMerge(dm, sm)
			continue
		}
		out[k] = v
	}
	return out
}

// result is a schematic name's resolution, kept for the rest of a load.
type result struct {
	id  string
	err error
}

// errReported stands for a resolution that failed earlier in the same
// load: its problem is reported once, not for every machine.
var errReported = errors.New("reported")

// resolve returns the schematic ID for a name or ID, asking the resolver
// once per name and load.
func (ls *layers) resolve(ctx context.Context, r SchematicResolver, schematic string, cache map[string]result) (string, error) {
	if hexIDRE.MatchString(schematic) {
		return schematic, nil
	}
	if res, ok := cache[schematic]; ok {
		if res.err != nil {
			return "", errReported
		}
		return res.id, nil
	}
	id, err := ls.ask(ctx, r, schematic)
	cache[schematic] = result{id, err}
	return id, err
}

func (ls *layers) ask(ctx context.Context, r SchematicResolver, schematic string) (string, error) {
	path := ls.files["schematics"][schematic]
	if r == nil {
		return "", fmt.Errorf("talos.schematic %q: names need the Image Factory client to resolve; give the 64-hex ID instead", schematic)
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	id, err := r.SchematicID(ctx, body)
	if err != nil {
		return "", fmt.Errorf("talos.schematic %q (%s): %w", schematic, path, err)
	}
	if !hexIDRE.MatchString(id) {
		return "", fmt.Errorf("talos.schematic %q: resolver answered %q, not a 64-hex ID", schematic, id)
	}
	return id, nil
}

// render renders p's config from in (ls.input's) and puts the URL
// comment on it; the warnings come as the machine's Problems, and facts
// receive what the checks across machines compare.
func (ls *layers) render(p Profile, in render.Input, baseURL string) *rendered {
	r := &rendered{}
	in.Facts = &r.facts
	out, warns, err := render.Check(in)
	for _, w := range warns {
		r.warnings = append(r.warnings, machineProblem(p.MAC.Dashed(), w))
	}
	if err != nil {
		r.err = machineProblems(p.MAC.Dashed(), err)
		return r
	}
	r.config = out
	if baseURL != "" {
		head := fmt.Sprintf("# tinderbox: machine config of %s, served at %s/config/%s\n", p.MAC.Dashed(), strings.TrimSuffix(baseURL, "/"), p.MAC.Dashed())
		r.config = append([]byte(head), out...)
	}
	return r
}

// input gives p's base config and patches (each read once a load) and
// data in what render takes.
func (ls *layers) input(p Profile, host string) (render.Input, error) {
	read := func(sub, name string) (render.File, error) {
		path := ls.files[sub][name]
		ft := ls.text(path)
		if ft.err != nil {
			return render.File{}, &Problem{Machine: p.MAC.Dashed(), File: path, Msg: ft.err.Error()}
		}
		return render.File{Name: path, Text: ft.data}, nil
	}
	base, err := read("configs", p.Config)
	if err != nil {
		return render.Input{}, err
	}
	image := ""
	if host != "" {
		image = host + "/installer/" + p.Talos.SchematicID + ":" + p.Talos.Version
	}
	in := render.Input{
		Base: base,
		Data: render.Data{
			Machine: render.MachineData{MAC: p.MAC.Dashed(), Hostname: p.Hostname, Arch: string(p.Talos.Arch)},
			Values:  p.Values,
			Talos:   render.TalosData{Version: p.Talos.Version, SchematicID: p.Talos.SchematicID, InstallerImage: image},
		},
		InstallerImage: image,
		Hostname:       p.Hostname,
		RequireDisk:    p.Install == machine.InstallOnce,
	}
	if b := ls.bundles[p.Secrets]; b.bundle != nil {
		in.Secrets, in.SecretsFile = b.bundle, b.file
	}
	for _, name := range p.Patches {
		f, err := read("patches", name)
		if err != nil {
			return render.Input{}, err
		}
		in.Patches = append(in.Patches, f)
	}
	return in, nil
}

// machineProblems turns render's problems into the machine's Problems.
func machineProblems(mac string, err error) error {
	var errs []error
	for _, e := range problem.Leaves(err) {
		var rp *render.Problem
		if errors.As(e, &rp) {
			errs = append(errs, machineProblem(mac, rp))
			continue
		}
		errs = append(errs, &Problem{Machine: mac, Msg: e.Error()})
	}
	return errors.Join(errs...)
}

// machineProblem is render's problem rp as one of machine mac's.
func machineProblem(mac string, rp *render.Problem) *Problem {
	msg := rp.Msg
	if rp.Path != "" {
		msg = rp.Path + ": " + msg
	}
	if rp.Warning {
		msg = "warning: " + msg
	}
	return &Problem{Machine: mac, File: rp.File, Line: rp.Line, Msg: msg}
}

// factoryHost is the host (and port) of the factory URL, or "".
func factoryHost(factoryURL string) string {
	u, err := url.Parse(factoryURL)
	if err != nil {
		return ""
	}
	return u.Host
}
