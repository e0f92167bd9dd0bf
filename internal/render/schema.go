package render

import (
	"fmt"

	"github.com/tinderbox-boot/tinderbox/internal/talosschema"
)

// Len returns the number of keys of m (talosschema.Map).
func (m Map) Len() int { return len(m) }

// At returns the i-th key of m and its value (talosschema.Map).
func (m Map) At(i int) (string, any) { return m[i].Key, m[i].Value }

// schema checks every document of a rendered config against the interface
// of the machine's Talos version (talosschema.Validate) and records what
// it finds as problems: unknown keys, wrong types and values, unknown
// document kinds as errors; deprecated keys and doubtful values as
// warnings. A problem already recorded at the same path by the checks
// above is not repeated.
func (c *checker) schema(docs []any, version string) {
	seen := map[string]bool{}
	for _, p := range c.probs {
		seen[p.Path] = true
	}
	main := mainDoc(docs)
	for _, is := range talosschema.Validate(version, docs) {
		msg := is.Msg
		if is.Suggest != "" {
			msg += " (" + is.Suggest + ")"
		}
		if is.Doc == main && !is.Warning && seen[pathString(is.Path)] {
			continue
		}
		record := c.add
		if is.Warning {
			record = c.warn
		}
		record(is.Path, is.Value, "%s", msg)
		if is.Doc == main {
			continue // located by origins.locate, on the layer that set it
		}
		// The version, or a document with a kind: named, and put on the
		// base config (the lines of kinded documents are not traced to
		// their layer).
		p := c.probs[len(c.probs)-1]
		p.File, p.Path, p.segs, p.value = c.base, "", nil, nil
		if is.Doc >= 0 {
			p.Path = docLabel(docs[is.Doc])
			if len(is.Path) > 0 {
				p.Path += ": " + pathString(is.Path)
			}
		}
	}
}

// docLabel names a document by its kind and, when it has one, its name.
func docLabel(d any) string {
	m, _ := d.(Map)
	kind, ok := m.Get("kind")
	if !ok {
		return "document"
	}
	if name, ok := m.Get("name"); ok {
		return fmt.Sprintf("%v %v", kind, name)
	}
	return fmt.Sprint(kind)
}
