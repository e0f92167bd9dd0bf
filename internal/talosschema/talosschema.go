package talosschema

import (
	"embed"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Map is a YAML mapping as Validate reads it: Len keys, and At(i) the i-th
// key and its value. Values are Map, map[string]any, []any, string,
// Number, the Go integer and float types, bool or nil (a YAML null).
type Map interface {
	Len() int
	At(i int) (key string, value any)
}

// Number is implemented by a value that is a YAML number kept as the text
// its source wrote ("8", "0x1F", "1e3"), the way render holds numbers:
// Validate reads such a value as a number.
type Number interface {
	YAMLNumber() string
}

// Issue is one thing Talos would refuse in a config, or (Warning) one it
// accepts but that is deprecated or doubtful.
type Issue struct {
	// Doc is the index of the document in the slice given to Validate,
	// -1 for an issue about the whole config (the version).
	Doc int
	// Path is the YAML path of the offending key or value inside the
	// document: map keys as they are, list indexes in brackets, e.g.
	// machine network interfaces [0] adresses. Empty for the document
	// itself.
	Path []string
	// Msg says what is wrong, without the path.
	Msg string
	// Warning marks something Talos accepts.
	Warning bool
	// Suggest is a fix for a near-miss key or kind, e.g. "did you mean
	// `addresses`?"; empty when there is none.
	Suggest string
	// Value is the offending scalar value, nil for keys, maps and lists.
	Value any
}

// String formats the issue as "document N: a.b[0].c: msg (suggestion)".
func (is Issue) String() string {
	var b strings.Builder
	if is.Doc >= 0 {
		fmt.Fprintf(&b, "document %d: ", is.Doc)
	}
	if p := PathString(is.Path); p != "" {
		b.WriteString(p + ": ")
	}
	if is.Warning {
		b.WriteString("warning: ")
	}
	b.WriteString(is.Msg)
	if is.Suggest != "" {
		b.WriteString(" (" + is.Suggest + ")")
	}
	return b.String()
}

// PathString joins path segments with dots, list indexes attached:
// machine.network.interfaces[0].addresses.
func PathString(p []string) string {
	var b strings.Builder
	for i, s := range p {
		if i > 0 && !strings.HasPrefix(s, "[") {
			b.WriteByte('.')
		}
		b.WriteString(s)
	}
	return b.String()
}

//go:embed data/*.json
var dataFS embed.FS

// node is one value type; the generator (gen/) writes the same JSON shape.
type node struct {
	T    string            `json:"t"` // any, obj, dict, list, str, int, bool, or
	Keys map[string]int    `json:"k"` // obj: the keys and their types
	Dep  map[string]string `json:"d"` // obj: deprecated keys → replacing documents ("" for none known)
	Req  []string          `json:"r"` // obj: keys that must be present
	Open bool              `json:"o"` // obj: other keys are allowed too
	Elem int               `json:"e"` // dict, list: the type of the values
	Alt  []int             `json:"a"` // or: the alternatives
	Enum []string          `json:"n"` // str: the values allowed
	Pat  string            `json:"p"` // str: a pattern the schema gives

	pat *regexp.Regexp
}

// release is one Talos minor version's data.
type release struct {
	Talos string `json:"talos"`
	Docs  []struct {
		Version    string `json:"version"`
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Node       int    `json:"node"`
	} `json:"docs"`
	Nodes []*node `json:"nodes"`

	major, minor int
	main         int                       // node of the v1alpha1 document
	kinds        map[string]map[string]int // kind → apiVersion → node
	kindNames    []string
}

var (
	loadOnce sync.Once
	releases []*release // oldest first
	loadErr  error
)

func load() {
	entries, err := dataFS.ReadDir("data")
	if err != nil {
		loadErr = err
		return
	}
	for _, e := range entries {
		b, err := dataFS.ReadFile(path.Join("data", e.Name()))
		if err != nil {
			loadErr = err
			return
		}
		r := &release{main: -1, kinds: map[string]map[string]int{}}
		if err := json.Unmarshal(b, r); err != nil {
			loadErr = fmt.Errorf("talosschema: %s: %w", e.Name(), err)
			return
		}
		var ok bool
		if r.major, r.minor, ok = parseVersion(r.Talos); !ok {
			loadErr = fmt.Errorf("talosschema: %s: version %q", e.Name(), r.Talos)
			return
		}
		for _, d := range r.Docs {
			if d.Kind == "" {
				r.main = d.Node
				continue
			}
			if r.kinds[d.Kind] == nil {
				r.kinds[d.Kind] = map[string]int{}
				r.kindNames = append(r.kindNames, d.Kind)
			}
			r.kinds[d.Kind][d.APIVersion] = d.Node
		}
		for _, n := range r.Nodes {
			if n.Pat != "" {
				n.pat = regexp.MustCompile(n.Pat) // the generator keeps only patterns that compile
			}
		}
		releases = append(releases, r)
	}
	sort.Slice(releases, func(i, j int) bool {
		a, b := releases[i], releases[j]
		return a.major < b.major || a.major == b.major && a.minor < b.minor
	})
	if len(releases) == 0 {
		loadErr = fmt.Errorf("talosschema: no data")
	}
}

// Versions returns the Talos minor versions there is data for, oldest
// first (v1.10, v1.11, …).
func Versions() []string {
	loadOnce.Do(load)
	var v []string
	for _, r := range releases {
		v = append(v, r.Talos)
	}
	return v
}

// parseVersion reads "v1.12.7", "1.12" or "v1.12.0-beta.1" as 1, 12.
func parseVersion(v string) (major, minor int, ok bool) {
	a, rest, found := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	if !found {
		return 0, 0, false
	}
	b, _, _ := strings.Cut(rest, ".")
	b, _, _ = strings.Cut(b, "-")
	x, err1 := strconv.Atoi(a)
	y, err2 := strconv.Atoi(b)
	return x, y, err1 == nil && err2 == nil && x >= 0 && y >= 0
}

// pick returns the data for a Talos version and, when that is not the
// version's own, a warning saying which it is.
func pick(version string) (*release, *Issue) {
	newest, oldest := releases[len(releases)-1], releases[0]
	if version == "" {
		return newest, nil
	}
	major, minor, ok := parseVersion(version)
	if !ok {
		return newest, &Issue{Doc: -1, Warning: true, Msg: fmt.Sprintf("Talos version %q is not vMAJOR.MINOR.PATCH: the config is checked against Talos %s's interface, the newest tinderbox knows", version, newest.Talos)}
	}
	for _, r := range releases {
		if r.major == major && r.minor == minor {
			return r, nil
		}
	}
	if major < oldest.major || major == oldest.major && minor < oldest.minor {
		return oldest, nil
	}
	return newest, &Issue{Doc: -1, Warning: true, Msg: fmt.Sprintf("Talos %s is newer than the newest interface tinderbox knows (%s): the config is checked against %s's", version, newest.Talos, newest.Talos)}
}

// Validate checks config documents (each a Map or map[string]any) against
// the interface of a Talos version: v1.12.7 is checked against v1.12's
// data; a version newer than the newest data against the newest, with a
// warning; one older than the oldest against the oldest; an empty version
// against the newest, without a warning. It returns the issues in document
// order; nil when there are none. It is safe for concurrent use.
func Validate(version string, docs []any) []Issue {
	loadOnce.Do(load)
	if loadErr != nil {
		return []Issue{{Doc: -1, Msg: loadErr.Error()}}
	}
	r, warn := pick(version)
	w := &walker{r: r}
	if warn != nil {
		w.issues = append(w.issues, *warn)
	}
	for i, d := range docs {
		w.doc = i
		w.document(d)
	}
	return w.issues
}

// walker gathers the issues of one Validate call.
type walker struct {
	r      *release
	doc    int
	issues []Issue
}

func (w *walker) add(path []string, value any, warning bool, format string, args ...any) *Issue {
	w.issues = append(w.issues, Issue{Doc: w.doc, Path: slices.Clone(path), Msg: fmt.Sprintf(format, args...), Warning: warning, Value: value})
	return &w.issues[len(w.issues)-1]
}

// document picks a document's kind and checks it.
func (w *walker) document(d any) {
	m, ok := asMap(d)
	if !ok {
		w.add(nil, nil, false, "a config document must be a map, have %s", describe(d))
		return
	}
	kind, hasKind := get(m, "kind")
	if !hasKind {
		if _, ok := get(m, "version"); !ok {
			w.add(nil, nil, false, "the document has neither `kind` nor `version`: Talos cannot tell what it is")
			return
		}
		w.value(w.r.main, d, make([]string, 0, 16))
		return
	}
	ks, _ := kind.(string)
	apis, ok := w.r.kinds[ks]
	if !ok {
		is := w.add([]string{"kind"}, kind, false, "Talos %s reads no %v document%s", w.r.Talos, kind, w.otherReleases(ks))
		if s := suggest(ks, w.r.kindNames); s != "" {
			is.Suggest = "did you mean `" + s + "`?"
		}
		return
	}
	api, hasAPI := get(m, "apiVersion")
	as, _ := api.(string)
	n, ok := apis[as]
	if !ok {
		want := slices.Sorted(maps.Keys(apis))
		if !hasAPI {
			w.add(nil, nil, false, "missing `apiVersion`: Talos %s reads %s documents of apiVersion %s", w.r.Talos, ks, strings.Join(want, ", "))
		} else {
			w.add([]string{"apiVersion"}, api, false, "Talos %s reads %s documents of apiVersion %s, not %v", w.r.Talos, ks, strings.Join(want, ", "), api)
		}
		return
	}
	w.value(n, d, make([]string, 0, 16))
}

// otherReleases says which other releases read a kind, for a message.
func (w *walker) otherReleases(kind string) string {
	var first, last *release
	for _, r := range releases {
		if _, ok := r.kinds[kind]; ok {
			if first == nil {
				first = r
			}
			last = r
		}
	}
	switch {
	case first == nil:
		return ""
	case first.major > w.r.major || first.major == w.r.major && first.minor > w.r.minor:
		return fmt.Sprintf(" (Talos %s and later do)", first.Talos)
	default:
		return fmt.Sprintf(" (Talos %s did)", last.Talos)
	}
}

// value checks v against node n; path is where v is.
func (w *walker) value(n int, v any, path []string) {
	if v == nil {
		return // a null decodes to the zero value anywhere
	}
	nd := w.r.Nodes[n]
	switch nd.T {
	case "any":
	case "obj":
		w.object(nd, v, path)
	case "dict":
		m, ok := asMap(v)
		if !ok {
			w.add(path, scalar(v), false, "want a map, have %s", describe(v))
			return
		}
		for i := range m.Len() {
			k, e := m.At(i)
			w.value(nd.Elem, e, append(path, k))
		}
	case "list":
		l, ok := v.([]any)
		if !ok {
			w.add(path, scalar(v), false, "want a list, have %s", describe(v))
			return
		}
		for i, e := range l {
			w.value(nd.Elem, e, append(path, "["+strconv.Itoa(i)+"]"))
		}
	case "or":
		w.oneOf(nd, v, path)
	default:
		w.scalar(nd, v, path)
	}
}

func (w *walker) object(nd *node, v any, path []string) {
	m, ok := asMap(v)
	if !ok {
		w.add(path, scalar(v), false, "want a map, have %s", describe(v))
		return
	}
	for i := range m.Len() {
		k, e := m.At(i)
		p := append(path, k)
		c, known := nd.Keys[k]
		if !known {
			if nd.Open {
				continue
			}
			is := w.add(p, nil, false, "unknown key `%s`: Talos %s would refuse the config", k, w.r.Talos)
			if s := suggest(k, slices.Sorted(maps.Keys(nd.Keys))); s != "" {
				is.Suggest = "did you mean `" + s + "`?"
			}
			continue
		}
		if by := nd.Dep[k]; by != "" && !empty(e) && !w.deprecatedInside(c, e) {
			docs := "the " + by + " document"
			if strings.Contains(by, ",") {
				docs = "the " + by + " documents"
			}
			w.add(p, nil, true, "deprecated in Talos %s, which still reads it: use %s instead", w.r.Talos, docs)
		}
		w.value(c, e, p)
	}
	for _, r := range nd.Req {
		if _, ok := get(m, r); !ok {
			w.add(path, nil, false, "missing `%s`, which Talos requires", r)
		}
	}
}

// deprecatedInside says whether v, of node n, holds keys that are
// deprecated on their own: those are reported instead of v's key.
func (w *walker) deprecatedInside(n int, v any) bool {
	nd := w.r.Nodes[n]
	m, ok := asMap(v)
	if !ok || nd.T != "obj" {
		return false
	}
	for i := range m.Len() {
		k, _ := m.At(i)
		if nd.Dep[k] != "" {
			return true
		}
	}
	return false
}

// oneOf accepts v when one alternative takes it without errors; otherwise
// it reports the errors of the first alternative of v's shape.
func (w *walker) oneOf(nd *node, v any, path []string) {
	first := -1
	for _, a := range nd.Alt {
		sub := &walker{r: w.r, doc: w.doc}
		sub.value(a, v, path)
		if !hasError(sub.issues) {
			w.issues = append(w.issues, sub.issues...)
			return
		}
		if first < 0 && sameShape(w.r.Nodes[a], v) {
			first = a
		}
	}
	if first >= 0 {
		w.value(first, v, path)
		return
	}
	var want []string
	for _, a := range nd.Alt {
		want = append(want, shapeName(w.r.Nodes[a]))
	}
	w.add(path, scalar(v), false, "want %s, have %s", strings.Join(want, " or "), describe(v))
}

// scalar checks a value of a str, int or bool node. YAML as Talos decodes
// it puts any scalar into a string field, but not a quoted value into a
// number or boolean field; quoted numbers and booleans only warn, in case
// the field's type reads its own text.
func (w *walker) scalar(nd *node, v any, path []string) {
	if _, ok := asMap(v); ok {
		w.add(path, nil, false, "want %s, have a map", shapeName(nd))
		return
	}
	if _, ok := v.([]any); ok {
		w.add(path, nil, false, "want %s, have a list", shapeName(nd))
		return
	}
	switch nd.T {
	case "int":
		switch x := v.(type) {
		case int, int64, uint64, int32, uint32, int8, int16, uint, uint8, uint16:
		case float64:
			if math.IsInf(x, 0) || math.IsNaN(x) {
				w.add(path, v, false, "want an integer, have %v", v)
			}
		case Number:
			if t := strings.ToLower(x.YAMLNumber()); strings.Contains(t, "inf") || strings.Contains(t, "nan") {
				w.add(path, v, false, "want an integer, have %s", x.YAMLNumber())
			}
		case string:
			if isNumber(x) {
				w.add(path, v, true, "Talos reads an integer here: the quoted %q may be refused, write it without quotes", x)
			} else {
				w.add(path, v, false, "want an integer, have %q", x)
			}
		default:
			w.add(path, v, false, "want an integer, have %s", describe(v))
		}
	case "bool":
		switch x := v.(type) {
		case bool:
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				w.add(path, v, true, "Talos reads a boolean here: the quoted %q may be refused, write %t without quotes", x, b)
			} else {
				w.add(path, v, false, "want true or false, have %q", x)
			}
		default:
			w.add(path, v, false, "want true or false, have %s", describe(v))
		}
	case "str":
		if len(nd.Enum) == 0 && nd.pat == nil {
			return
		}
		s, ok := v.(string)
		if !ok {
			s = fmt.Sprint(v)
		}
		if len(nd.Enum) > 0 && !slices.Contains(nd.Enum, s) {
			is := w.add(path, v, false, "%q is not one of %s", s, strings.Join(nd.Enum, ", "))
			if m := suggest(s, nd.Enum); m != "" {
				is.Suggest = "did you mean `" + m + "`?"
			}
			return
		}
		if nd.pat != nil && !nd.pat.MatchString(s) {
			w.add(path, v, true, "%q does not match the form Talos' schema gives (%s)", s, nd.Pat)
		}
	}
}

func hasError(issues []Issue) bool {
	for _, is := range issues {
		if !is.Warning {
			return true
		}
	}
	return false
}

func sameShape(nd *node, v any) bool {
	_, isMap := asMap(v)
	_, isList := v.([]any)
	switch nd.T {
	case "obj", "dict":
		return isMap
	case "list":
		return isList
	case "any", "or":
		return true
	}
	return !isMap && !isList
}

func shapeName(nd *node) string {
	switch nd.T {
	case "obj", "dict":
		return "a map"
	case "list":
		return "a list"
	case "int":
		return "an integer"
	case "bool":
		return "true or false"
	case "str":
		return "a string"
	}
	return "a value"
}

func describe(v any) string {
	if _, ok := asMap(v); ok {
		return "a map"
	}
	switch x := v.(type) {
	case []any:
		return "a list"
	case string:
		return strconv.Quote(x)
	}
	return fmt.Sprint(v)
}

// scalar returns v when it is a scalar, else nil (Issue.Value).
func scalar(v any) any {
	if _, ok := asMap(v); ok {
		return nil
	}
	if _, ok := v.([]any); ok {
		return nil
	}
	return v
}

func isNumber(s string) bool {
	if _, err := strconv.ParseInt(s, 0, 64); err == nil {
		return true
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// empty says whether a value sets nothing: null, {} or [].
func empty(v any) bool {
	if v == nil {
		return true
	}
	if m, ok := asMap(v); ok {
		return m.Len() == 0
	}
	if l, ok := v.([]any); ok {
		return len(l) == 0
	}
	return false
}

// goMap adapts a map[string]any, its keys sorted.
type goMap struct {
	keys []string
	m    map[string]any
}

func (g goMap) Len() int               { return len(g.keys) }
func (g goMap) At(i int) (string, any) { return g.keys[i], g.m[g.keys[i]] }
func asMap(v any) (Map, bool) {
	switch m := v.(type) {
	case Map:
		return m, true
	case map[string]any:
		return goMap{slices.Sorted(maps.Keys(m)), m}, true
	}
	return nil, false
}

func get(m Map, key string) (any, bool) {
	for i := range m.Len() {
		if k, v := m.At(i); k == key {
			return v, true
		}
	}
	return nil, false
}

// suggest returns the candidate nearest to s: one that differs only in
// case, else one at most two edits away (and fewer edits than s has
// letters); "" when none is.
func suggest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if strings.EqualFold(c, s) {
			return c
		}
		if d := distance(s, c); d < bestD && d < len(s) {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein edit distance of two strings, by bytes.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
