package render

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/tinderbox-boot/tinderbox/internal/secrets"
)

// Origin is where one leaf of a rendered config came from: the file and
// line that last set it, or Filled when tinderbox filled it in (the
// install image, the hostname, secrets from a bundle).
type Origin struct {
	// Path is the leaf's YAML path: machine.install.disk,
	// machine.network.interfaces[0].addresses[1] in the v1alpha1 document,
	// and in another document its kind (and name in brackets) first, as in
	// HostnameConfig.hostname or ExtensionServiceConfig[nut].configFiles[0].mountPath.
	Path string
	// Value is the leaf's value as YAML writes a scalar ("{}" and "[]" for
	// an empty map and list, "null" for null).
	Value string
	// File and Line locate the base config or patch that last set the
	// leaf. Line is 0 when the file is known but not the line (a value
	// only a template or a JSON patch's copy/move put there).
	File string
	Line int
	// Filled is true when tinderbox filled the leaf in itself; File is
	// empty then, or the secrets bundle's file for a value it came from.
	Filled bool
}

// Explain renders in as Check does, without the checks, and returns where
// every leaf of the result came from, in document order (the documents
// in the order they are served, each leaf in the order it is written).
// The error is a Problem when a file does not render or a patch does not
// apply; the config's own mistakes (what Check reports) are not errors
// here, so a broken config can be explained.
func Explain(in Input) ([]Origin, error) {
	docs, org, _, err := build(in)
	if err != nil {
		return nil, err
	}
	before := make([]any, len(docs))
	for i, d := range docs {
		before[i] = deepCopy(d)
	}
	fillSecrets(docs, in) // its problems are Check's to report
	docs = fill(docs, in)
	var out []Origin
	for _, d := range docs {
		m := d.(Map)
		var doc Map
		label := ""
		if _, kinded := m.Get("kind"); kinded {
			doc, label = m, docLabelOf(m)+"."
		}
		prior := priorDoc(before, m)
		walkLeaves(m, nil, func(segs []string, v any) {
			o := Origin{Path: label + pathString(segs), Value: scalarText(v)}
			if old, ok := leafAt(prior, segs); !ok || !equal(old, v) {
				o.Filled = true
				if doc == nil && in.Secrets != nil && secretPath(segs) {
					o.File = in.SecretsFile // filled from the bundle
				}
				out = append(out, o)
				return
			}
			var want any
			switch v.(type) {
			case Map, []any, nil:
			default:
				want = v
			}
			p := &Problem{segs: segs, value: want, doc: doc}
			org.locate(p)
			if p.Line == 0 && want != nil {
				// The value reads differently in its file (1.50 for 1.5,
				// True for true): the last file holding the path set it.
				p = &Problem{segs: segs, doc: doc}
				org.locate(p)
			}
			o.File, o.Line = p.File, p.Line
			out = append(out, o)
		})
	}
	return out, nil
}

// priorDoc returns the document of before (the documents as the patches
// left them, before fill) that doc is, or nil when fill added doc.
func priorDoc(before []any, doc Map) Map {
	kind, kinded := doc.Get("kind")
	for _, b := range before {
		bm := b.(Map)
		if !kinded {
			if _, k := bm.Get("kind"); !k {
				if _, ok := bm.Get("version"); ok {
					return bm
				}
			}
			continue
		}
		if k, _ := bm.Get("kind"); k == kind && sameDoc(bm, doc, kind) {
			return bm
		}
	}
	return nil
}

// walkLeaves calls fn with the path of every leaf under v: scalars, and
// empty maps and lists. List items are "[i]" segments.
func walkLeaves(v any, path []string, fn func([]string, any)) {
	switch v := v.(type) {
	case Map:
		if len(v) == 0 && path != nil {
			fn(path, v)
			return
		}
		for _, kv := range v {
			walkLeaves(kv.Value, append(path[:len(path):len(path)], kv.Key), fn)
		}
	case []any:
		if len(v) == 0 {
			fn(path, v)
			return
		}
		for i, e := range v {
			walkLeaves(e, index(path, i), fn)
		}
	default:
		fn(path, v)
	}
}

// leafAt returns the value at path in doc ("[i]" segments index lists).
func leafAt(doc Map, path []string) (any, bool) {
	var v any = doc
	if doc == nil {
		return nil, false
	}
	for _, seg := range path {
		switch c := v.(type) {
		case Map:
			var ok bool
			if v, ok = c.Get(seg); !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(seg[1 : len(seg)-1])
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			v = c[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// scalarText writes a leaf the way it reads in YAML.
func scalarText(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case Map:
		return "{}"
	case []any:
		return "[]"
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// secretPath says whether segs, a path in the v1alpha1 document, is one the
// secrets bundle fills (secrets.Paths).
func secretPath(segs []string) bool {
	return slices.ContainsFunc(secrets.Paths(), func(p []string) bool { return slices.Equal(p, segs) })
}
