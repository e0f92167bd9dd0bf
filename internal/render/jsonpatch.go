package render

import (
	"encoding/json"
	"errors"
	"fmt"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// jsonPatchOps says whether a patch document is an RFC 6902 JSON patch: a
// non-empty list whose every item is a map with an "op".
func jsonPatchOps(doc any) ([]any, bool) {
	ops, ok := doc.([]any)
	if !ok || len(ops) == 0 {
		return nil, false
	}
	for _, o := range ops {
		m, ok := o.(Map)
		if !ok {
			return nil, false
		}
		if _, ok := m.Get("op"); !ok {
			return nil, false
		}
	}
	return ops, true
}

// applyJSONPatch applies RFC 6902 operations to the v1alpha1 document. Like
// talosctl, it refuses a multi-document config: JSON pointers cannot say
// which document they mean.
func applyJSONPatch(docs []any, ops []any) ([]any, error) {
	if len(docs) != 1 {
		return nil, errors.New("JSON patches (RFC 6902) apply only to a single-document config; use a strategic merge patch")
	}
	if mainDoc(docs) != 0 {
		return nil, errors.New("JSON patch: the config has no v1alpha1 document")
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("JSON patch: %w", err)
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, fmt.Errorf("JSON patch: %w", err)
	}
	doc, err := json.Marshal(docs[0])
	if err != nil {
		return nil, fmt.Errorf("JSON patch: %w", err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		return nil, fmt.Errorf("JSON patch: %w", err)
	}
	v, err := fromJSON(out)
	if err != nil {
		return nil, fmt.Errorf("JSON patch: %w", err)
	}
	if _, ok := v.(Map); !ok {
		return nil, errors.New("JSON patch: the result is not a map")
	}
	return []any{v}, nil
}
