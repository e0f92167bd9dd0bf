package talosschema

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite testdata/*.want")

// readCase reads testdata/<name>.yaml: its "# talos: VERSION" first line
// and its documents, decoded as plain Go values.
func readCase(t testing.TB, file string) (version string, docs []any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := bytes.Cut(b, []byte("\n"))
	version, ok := strings.CutPrefix(string(first), "# talos: ")
	if !ok {
		t.Fatalf("%s: the first line is not \"# talos: VERSION\"", file)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return version, docs
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		docs = append(docs, d)
	}
}

// TestGolden validates each testdata/<name>.yaml against its Talos
// version; testdata/<name>.want holds the issues, one a line. The v1.*
// cases are configs in the shape talosctl writes for that release, and
// must have no issue at all.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("found %d cases, want the v1.10 to v1.13 configs and the failing ones", len(files))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			version, docs := readCase(t, f)
			var b strings.Builder
			issues := Validate(version, docs)
			for _, is := range issues {
				b.WriteString(is.String() + "\n")
			}
			if strings.HasPrefix(name, "v1.") && len(issues) > 0 {
				t.Errorf("a valid %s config has issues:\n%s", version, b.String())
			}
			want := strings.TrimSuffix(f, ".yaml") + ".want"
			if *update {
				if err := os.WriteFile(want, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			w, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(w) {
				t.Errorf("got:\n%s\nwant (%s; run with -update if the change is right):\n%s", b.String(), want, w)
			}
		})
	}
}

// TestIssues checks the fields of a few issues, beside their text.
func TestIssues(t *testing.T) {
	tests := []struct {
		name, file string
		path       string
		warning    bool
		suggest    string
	}{
		{"near-miss key", "err-unknown-key-v1.11", "machine.network.interfaces[0].adresses", false, "did you mean `addresses`?"},
		{"case", "err-unknown-key-v1.11", "cluster.network.dnsdomain", false, "did you mean `dnsDomain`?"},
		{"no near key", "err-unknown-key-v1.11", "cluster.shinyNewThing", false, ""},
		{"kind typo", "err-kinds-v1.12", "kind", false, "did you mean `LinkConfig`?"},
		{"map for a string", "err-types-v1.12", "machine.kubelet.extraArgs.node-labels", false, ""},
		{"enum", "err-types-v1.12", "machine.type", false, "did you mean `worker`?"},
		{"quoted number", "err-types-v1.12", "machine.features.kubePrism.port", true, ""},
		{"deprecated", "warn-deprecated-v1.12", "machine.network.hostname", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version, docs := readCase(t, filepath.Join("testdata", tt.file+".yaml"))
			for _, is := range Validate(version, docs) {
				if PathString(is.Path) != tt.path {
					continue
				}
				if is.Warning != tt.warning || is.Suggest != tt.suggest {
					t.Errorf("got warning %v, suggest %q; want %v, %q (%s)", is.Warning, is.Suggest, tt.warning, tt.suggest, is)
				}
				return
			}
			t.Errorf("no issue at %s", tt.path)
		})
	}
}

func TestPick(t *testing.T) {
	tests := []struct {
		version, want string
		warn          bool
	}{
		{"v1.12.7", "v1.12", false},
		{"1.11.0", "v1.11", false},
		{"v1.13.0-beta.1", "v1.13", false},
		{"v1.10", "v1.10", false},
		{"v1.8.3", "v1.10", false},
		{"v0.14.0", "v1.10", false},
		{"v1.14.2", "v1.13", true},
		{"v2.0.0", "v1.13", true},
		{"", "v1.13", false},
		{"latest", "v1.13", true},
	}
	loadOnce.Do(load)
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	for _, tt := range tests {
		r, warn := pick(tt.version)
		if r.Talos != tt.want || (warn != nil) != tt.warn {
			t.Errorf("pick(%q): got %s, warning %v; want %s, warning %v", tt.version, r.Talos, warn, tt.want, tt.warn)
		}
	}
}

func TestVersions(t *testing.T) {
	got := strings.Join(Versions(), " ")
	if got != "v1.10 v1.11 v1.12 v1.13" {
		t.Errorf("got %s, want v1.10 v1.11 v1.12 v1.13", got)
	}
}

func TestSuggest(t *testing.T) {
	keys := []string{"addresses", "dhcp", "mtu", "routes", "vip", "vlans"}
	tests := []struct{ in, want string }{
		{"adresses", "addresses"},
		{"Addresses", "addresses"},
		{"vlan", "vlans"},
		{"mt", "mtu"},
		{"ip", "vip"},
		{"id", ""}, // two edits from vip, but as many as it has letters
		{"gateway", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.in, keys); got != tt.want {
			t.Errorf("suggest(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// A Map value (as render holds documents) and a map[string]any are read
// alike.
type pairs [][2]any

func (p pairs) Len() int               { return len(p) }
func (p pairs) At(i int) (string, any) { return p[i][0].(string), p[i][1] }

// num is a number kept as its text, as render keeps numbers.
type num string

func (n num) YAMLNumber() string { return string(n) }

func TestMapInterface(t *testing.T) {
	doc := pairs{{"version", "v1alpha1"}, {"machine", pairs{
		{"type", "worker"},
		{"instal", map[string]any{}},
		{"features", pairs{{"kubePrism", pairs{{"port", num("0x1D15")}, {"enabled", num("1")}}}}},
		{"sysctls", pairs{{"vm.max_map_count", num("262144")}}},
	}}}
	var got []string
	for _, is := range Validate("v1.12.1", []any{doc}) {
		got = append(got, is.String())
	}
	want := []string{
		"document 0: machine.instal: unknown key `instal`: Talos v1.12 would refuse the config (did you mean `install`?)",
		"document 0: machine.features.kubePrism.enabled: want true or false, have 1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// ordered turns decoded maps into pairs, sorted, the way render holds a
// document (an ordered Map).
func ordered(v any) any {
	switch v := v.(type) {
	case map[string]any:
		var p pairs
		for _, k := range slices.Sorted(maps.Keys(v)) {
			p = append(p, [2]any{k, ordered(v[k])})
		}
		return p
	case []any:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = ordered(e)
		}
		return l
	}
	return v
}

// BenchmarkValidate validates a typical v1.12 control-plane config (six
// documents), held as ordered maps like render's.
func BenchmarkValidate(b *testing.B) {
	version, docs := readCase(b, filepath.Join("testdata", "v1.12-controlplane.yaml"))
	for i, d := range docs {
		docs[i] = ordered(d)
	}
	if issues := Validate(version, docs); len(issues) > 0 {
		b.Fatalf("issues: %v", issues)
	}
	b.ReportAllocs()
	for b.Loop() {
		Validate(version, docs)
	}
}
