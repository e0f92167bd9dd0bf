package render

import (
	"fmt"
	"strings"
)

// directive is the key of a strategic-merge directive. Talos, like
// Kubernetes, knows one: "$patch: delete".
const directive = "$patch"

// Merge applies a strategic-merge patch to dst with the semantics of
// `talosctl machineconfig patch` and returns the result; dst and patch are
// left unchanged. The rules, from Talos' documentation of configuration
// patches:
//   - maps merge key by key, recursively; a scalar or list in the patch
//     replaces what dst has, a null in the patch changes nothing;
//   - a map holding "$patch: delete" deletes the key it sits under, and a
//     list item holding it deletes the items it matches;
//   - lists append, except: machine.network.interfaces merge items that
//     have the same `interface` or the same `deviceSelector`; their `vlans`
//     merge by `vlanId`; cluster.apiServer.admissionControl merges by
//     `name`; an ExtensionServiceConfig's configFiles merge by `mountPath`;
//     cluster.network.podSubnets and serviceSubnets, and
//     cluster.apiServer.auditPolicy, are replaced whole.
func Merge(dst, patch any) (any, error) {
	if err := checkDirectives(patch, nil); err != nil {
		return nil, err
	}
	return mergeOwned(deepCopy(dst), patch)
}

// mergeOwned is Merge into a dst the caller owns, which it may modify:
// a render's documents are its own copies, so a patch need not copy them
// again. patch is left unchanged, and nothing of it is shared with the
// result (clean copies what merge takes from it).
func mergeOwned(dst, patch any) (any, error) {
	if err := checkDirectives(patch, nil); err != nil {
		return nil, err
	}
	return merge(dst, patch, nil)
}

// checkDirectives checks every directive in a patch before any of it
// applies, so that a bad one fails whatever the patch meets.
func checkDirectives(v any, path []string) error {
	switch v := v.(type) {
	case Map:
		if err := checkDirective(v, path); err != nil {
			return err
		}
		for _, kv := range v {
			if err := checkDirectives(kv.Value, append(path[:len(path):len(path)], kv.Key)); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := checkDirectives(e, append(path[:len(path):len(path)], "[]")); err != nil {
				return err
			}
		}
	}
	return nil
}

// merge applies patch to dst, which it may modify; path is dst's place in
// the document: map keys, with "[]" for a list item.
func merge(dst, patch any, path []string) (any, error) {
	switch p := patch.(type) {
	case nil:
		return dst, nil
	case Map:
		if replaced(path) {
			return clean(p), nil
		}
		d, ok := dst.(Map)
		if !ok {
			return clean(p), nil
		}
		for _, kv := range p {
			if kv.Key == directive {
				continue
			}
			sub := append(path[:len(path):len(path)], kv.Key)
			if isDelete(kv.Value) {
				d = d.Delete(kv.Key)
				continue
			}
			old, _ := d.Get(kv.Key)
			v, err := merge(old, kv.Value, sub)
			if err != nil {
				return nil, err
			}
			if kv.Value == nil && old == nil {
				// A null in the patch adds nothing, not even the key.
				continue
			}
			d = d.Set(kv.Key, v)
		}
		return d, nil
	case []any:
		d, ok := dst.([]any)
		if !ok || replaced(path) {
			return cleanList(p), nil
		}
		match := listKey(path)
		item := append(path[:len(path):len(path)], "[]")
		for _, pv := range p {
			i := -1
			if match != nil {
				i = indexFunc(d, pv, match)
			}
			if isDelete(pv) {
				for i >= 0 {
					d = append(d[:i:i], d[i+1:]...)
					i = indexFunc(d, pv, match)
				}
				continue
			}
			if i < 0 {
				d = append(d, clean(pv))
				continue
			}
			v, err := merge(d[i], pv, item)
			if err != nil {
				return nil, err
			}
			d[i] = v
		}
		return d, nil
	}
	return patch, nil
}

// checkDirective rejects a "$patch" that is not "delete": Talos knows no
// other, and a typo must not pass as an ordinary key.
func checkDirective(v any, path []string) error {
	m, ok := v.(Map)
	if !ok {
		return nil
	}
	d, ok := m.Get(directive)
	if !ok || d == "delete" {
		return nil
	}
	return fmt.Errorf("%s: %s: %v: only \"delete\" is supported", pathString(path), directive, d)
}

// isDelete says whether v is a map holding "$patch: delete".
func isDelete(v any) bool {
	m, ok := v.(Map)
	if !ok {
		return false
	}
	d, _ := m.Get(directive)
	return d == "delete"
}

// replaced says whether the value at path is replaced whole by a patch.
func replaced(path []string) bool {
	n := len(path)
	if n < 2 {
		return false
	}
	last, parent := path[n-1], path[n-2]
	switch {
	case parent == "network" && (last == "podSubnets" || last == "serviceSubnets"):
		return true
	case parent == "apiServer" && last == "auditPolicy":
		return true
	}
	return false
}

// listKey returns how items of the list at path are matched, or nil when
// the list appends.
func listKey(path []string) func(a, b Map) bool {
	n := len(path)
	at := func(i int) string {
		if i < 0 || i >= n {
			return ""
		}
		return path[i]
	}
	switch {
	case at(n-1) == "interfaces" && at(n-2) == "network":
		return func(a, b Map) bool {
			return sameKey(a, b, "interface") || sameKey(a, b, "deviceSelector")
		}
	case at(n-1) == "vlans" && at(n-2) == "[]" && at(n-3) == "interfaces":
		return keyed("vlanId")
	case at(n-1) == "admissionControl" && at(n-2) == "apiServer":
		return keyed("name")
	case n == 1 && path[0] == "configFiles":
		return keyed("mountPath")
	}
	return nil
}

func keyed(key string) func(a, b Map) bool {
	return func(a, b Map) bool { return sameKey(a, b, key) }
}

// sameKey says whether both maps have key, with equal values.
func sameKey(a, b Map, key string) bool {
	av, aok := a.Get(key)
	bv, bok := b.Get(key)
	if !aok || !bok || av == nil {
		return false
	}
	return equal(av, bv)
}

// equal compares two values, maps regardless of key order, and scalars by
// their text (100 and int64(100) are the same VLAN).
func equal(a, b any) bool {
	switch a := a.(type) {
	case Map:
		b, ok := b.(Map)
		if !ok || len(a) != len(b) {
			return false
		}
		for _, kv := range a {
			bv, ok := b.Get(kv.Key)
			if !ok || !equal(kv.Value, bv) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !equal(a[i], b[i]) {
				return false
			}
		}
		return true
	}
	switch b.(type) {
	case Map, []any:
		return false
	}
	if a == nil || b == nil {
		return a == b
	}
	return fmt.Sprint(a) == fmt.Sprint(b)
}

// indexFunc returns the index of the first item of list that match says
// is the same as v, or -1.
func indexFunc(list []any, v any, match func(a, b Map) bool) int {
	pm, ok := v.(Map)
	if !ok || match == nil {
		return -1
	}
	for i, e := range list {
		if em, ok := e.(Map); ok && match(em, pm) {
			return i
		}
	}
	return -1
}

// clean returns a copy of v without directives, as it enters the result.
func clean(v any) any {
	switch v := v.(type) {
	case Map:
		out := make(Map, 0, len(v))
		for _, kv := range v {
			if kv.Key == directive || isDelete(kv.Value) {
				continue
			}
			out = append(out, Pair{kv.Key, clean(kv.Value)})
		}
		return out
	case []any:
		return cleanList(v)
	}
	return v
}

func cleanList(v []any) []any {
	out := make([]any, 0, len(v))
	for _, e := range v {
		if isDelete(e) {
			continue
		}
		out = append(out, clean(e))
	}
	return out
}

// deepCopy copies maps and lists, so that merging never writes into its
// inputs.
func deepCopy(v any) any {
	switch v := v.(type) {
	case Map:
		out := make(Map, len(v))
		for i, kv := range v {
			out[i] = Pair{kv.Key, deepCopy(kv.Value)}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// pathString writes a path the way problems name it: machine.network.interfaces[].
func pathString(path []string) string {
	if len(path) == 0 {
		return "(document)"
	}
	var b strings.Builder
	for i, p := range path {
		if p == "[]" || strings.HasPrefix(p, "[") {
			b.WriteString(p)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}
