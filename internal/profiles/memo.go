package profiles

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/tinderbox-boot/tinderbox/internal/render"
	"github.com/tinderbox-boot/tinderbox/internal/version"
	"github.com/tinderbox-boot/tinderbox/pkg/machine"
)

// Incremental loads. A load keeps, in a memo, every layer file it parsed
// (by kind, path and content) and every machine config it rendered (by
// renderKey, the hash of everything the render reads). A Store hands the
// memo of its last load to the next one, which parses and renders only
// what is not in it: after an edit of one machine's file, that machine;
// after an edit of a group, its members; after an edit of a base config
// or patch, the machines that use it. Everything else of a load (the
// layers' stacking, the checks across machines) is done whole each time,
// so a load with a memo returns exactly what one without returns.

// memo is what one load leaves for the next. It is written only by its
// own load (under mu) and read-only afterwards.
type memo struct {
	mu      sync.Mutex
	layers  map[layerKey]parsedLayer
	renders map[[sha256.Size]byte]*rendered
}

func newMemo() *memo {
	return &memo{layers: map[layerKey]parsedLayer{}, renders: map[[sha256.Size]byte]*rendered{}}
}

// layerKey is a layer file's identity for the memo: parseLayer's result
// depends on these alone.
type layerKey struct {
	kind kind
	path string
	data string
}

type parsedLayer struct {
	l   *layer
	err error
}

// rendered is one machine's render: its config (with the URL comment),
// its warnings and errors as the machine's Problems, and what the checks
// across machines compare. It is not changed once made.
type rendered struct {
	config   []byte
	warnings []error
	err      error
	facts    render.Facts
}

// loader carries one load's memos: prev, the last load's (read only; nil
// for none), and next, this load's, holding every entry this load used.
type loader struct {
	prev, next *memo
	templates  render.Templates

	mu       sync.Mutex
	rendered []machine.MAC // the machines rendered, not taken from prev
}

func newLoader(prev *memo) *loader { return &loader{prev: prev, next: newMemo()} }

// parse returns the layer of path with content data, parsed by prev's
// load or now.
func (lo *loader) parse(path string, data []byte, k kind) (*layer, error) {
	if lo == nil {
		return parseLayer(path, data, k)
	}
	key := layerKey{k, path, string(data)}
	pl, ok := lo.prev.layer(key)
	if !ok {
		pl.l, pl.err = parseLayer(path, data, k)
	}
	lo.next.mu.Lock()
	lo.next.layers[key] = pl
	lo.next.mu.Unlock()
	return pl.l, pl.err
}

func (m *memo) layer(k layerKey) (parsedLayer, bool) {
	if m == nil {
		return parsedLayer{}, false
	}
	pl, ok := m.layers[k]
	return pl, ok
}

// render renders p's config, or takes it from prev's load when every
// input of the render is the same.
func (lo *loader) render(ls *layers, p Profile, host, baseURL string) *rendered {
	in, err := ls.input(p, host)
	if err != nil {
		return &rendered{err: err}
	}
	key := ls.renderKey(in, p.Secrets, baseURL)
	r, ok := (*rendered)(nil), false
	if lo.prev != nil {
		r, ok = lo.prev.renders[key]
	}
	if !ok {
		in.Templates = &lo.templates
		r = ls.render(p, in, baseURL)
		lo.mu.Lock()
		lo.rendered = append(lo.rendered, p.MAC)
		lo.mu.Unlock()
	}
	lo.next.mu.Lock()
	lo.next.renders[key] = r
	lo.next.mu.Unlock()
	return r
}

// renderedMACs are the machines this load rendered, by MAC.
func (lo *loader) renderedMACs() []machine.MAC {
	out := slices.Clone(lo.rendered)
	slices.SortFunc(out, compareMAC)
	return out
}

// renderKey is the SHA-256 of every input of a render of in (every
// field of render.Input but the outputs Facts and Templates, with files
// by name and content), of the boot URL the config's comment names, and
// of this build's version; bundle names the secrets bundle in.Secrets
// is. Two renders with the same key give the same bytes, warnings and
// errors.
func (ls *layers) renderKey(in render.Input, bundle, baseURL string) [sha256.Size]byte {
	h := sha256.New()
	str := func(s string) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	file := func(f render.File) {
		str(f.Name)
		sum := ls.sum(f)
		h.Write(sum[:])
	}
	str("tinderbox render\x00" + version.Version + "\x00" + version.Commit)
	str(baseURL)
	file(in.Base)
	str(fmt.Sprint(len(in.Patches)))
	for _, p := range in.Patches {
		file(p)
	}
	d := in.Data
	for _, s := range []string{d.Machine.MAC, d.Machine.Hostname, d.Machine.Arch, d.Talos.Version, d.Talos.SchematicID, d.Talos.InstallerImage} {
		str(s)
	}
	hashValue(h, d.Values)
	str(in.InstallerImage)
	str(in.Hostname)
	str(fmt.Sprint(in.RequireDisk))
	str(in.SecretsFile)
	if in.Secrets != nil {
		sum := ls.bundles[bundle].sum
		h.Write(sum[:])
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// hashValue writes v (a machine's values: what YAML decodes to) into h,
// each value tagged with its type and each string and collection with its
// length, maps by sorted key: equal values give equal bytes, and values
// of different types or shapes different ones. A type YAML does not
// decode to is written as %#v prints it (maps sorted, with its type).
func hashValue(h io.Writer, v any) {
	var buf [1 + binary.MaxVarintLen64]byte
	tag := func(t byte, n uint64) {
		buf[0] = t
		h.Write(buf[:1+binary.PutUvarint(buf[1:], n)])
	}
	str := func(s string) {
		tag('s', uint64(len(s)))
		io.WriteString(h, s)
	}
	switch v := v.(type) {
	case nil:
		tag('0', 0)
	case bool:
		if v {
			tag('b', 1)
		} else {
			tag('b', 0)
		}
	case string:
		str(v)
	case int:
		tag('i', uint64(v))
	case int64:
		tag('I', uint64(v))
	case uint64:
		tag('u', v)
	case float64:
		tag('f', math.Float64bits(v))
	case map[string]any:
		tag('m', uint64(len(v)))
		for _, k := range slices.Sorted(maps.Keys(v)) {
			str(k)
			hashValue(h, v[k])
		}
	case []any:
		tag('l', uint64(len(v)))
		for _, e := range v {
			hashValue(h, e)
		}
	default:
		s := fmt.Sprintf("%#v", v)
		tag('?', uint64(len(s)))
		io.WriteString(h, s)
	}
}

// fileText is a base config or patch as read once for a load.
type fileText struct {
	data []byte
	sum  [sha256.Size]byte
	err  error
}

// text reads the file at path once per load. It is safe for concurrent
// use.
func (ls *layers) text(path string) fileText {
	ls.textMu.Lock()
	defer ls.textMu.Unlock()
	if ft, ok := ls.texts[path]; ok {
		return ft
	}
	var ft fileText
	ft.data, ft.err = os.ReadFile(path)
	if ft.err == nil {
		ft.sum = sha256.Sum256(ft.data)
	}
	if ls.texts == nil {
		ls.texts = map[string]fileText{}
	}
	ls.texts[path] = ft
	return ft
}

// sum is the SHA-256 of f's text, as read for this load.
func (ls *layers) sum(f render.File) [sha256.Size]byte {
	if ft := ls.text(f.Name); ft.err == nil {
		return ft.sum
	}
	return sha256.Sum256(f.Text)
}

// each calls fn(i) for every i in [0, n), on as many goroutines at a time
// as Go runs threads (GOMAXPROCS), and returns when every call has.
func each(n int, fn func(i int)) {
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i := range n {
		g.Go(func() error { fn(i); return nil })
	}
	_ = g.Wait() // fn returns no error
}
