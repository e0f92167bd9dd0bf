package render

import "github.com/tinderbox-boot/tinderbox/internal/talosschema"

// Len returns the number of keys of m (talosschema.Map).
func (m Map) Len() int { return len(m) }

// At returns the i-th key of m and its value (talosschema.Map).
func (m Map) At(i int) (string, any) { return m[i].Key, m[i].Value }

// YAMLNumber returns the number's text (talosschema.Number).
func (n Number) YAMLNumber() string { return string(n) }

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
		switch {
		case is.Doc < 0:
			// About the whole config (the version): on the base config.
			c.probs = append(c.probs, &Problem{File: c.base, Msg: msg})
		case is.Doc == main:
			if seen[pathString(is.Path)] {
				continue
			}
			c.add(is.Path, is.Value, "%s", msg)
		default:
			doc, _ := docs[is.Doc].(Map)
			if seen[docLabelOf(doc)+"."+pathString(is.Path)] {
				continue
			}
			c.addIn(doc, is.Path, is.Value, "%s", msg)
			if len(is.Path) == 0 {
				c.probs[len(c.probs)-1].Path = docLabelOf(doc) // the document itself
			}
		}
		if is.Warning {
			c.probs[len(c.probs)-1].Warning = true
		}
	}
}
