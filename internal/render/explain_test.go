package render

import "testing"

// TestExplainDocuments: in a multi-document config, a kinded patch's
// field is located in the patch, a base document's in the base, and the
// hostname tinderbox puts into the HostnameConfig is filled.
func TestExplainDocuments(t *testing.T) {
	in := Input{
		Base: File{Name: "base.yaml", Text: []byte(`version: v1alpha1
machine:
  type: worker
---
apiVersion: v1alpha1
kind: HostnameConfig
auto: stable
---
apiVersion: v1alpha1
kind: ResolverConfig
nameservers:
  - address: 10.0.0.1
`)},
		Patches: []File{{Name: "p.yaml", Text: []byte(`apiVersion: v1alpha1
kind: ResolverConfig
searchDomains:
  domains: [lan]
`)}},
		Data:     Data{Talos: TalosData{Version: "v1.12.0"}},
		Hostname: "w-01",
	}
	got, err := Explain(in)
	if err != nil {
		t.Fatal(err)
	}
	type at struct {
		value, file string
		line        int
		filled      bool
	}
	want := []struct {
		path string
		at   at
	}{
		{"version", at{"v1alpha1", "base.yaml", 1, false}},
		{"machine.type", at{"worker", "base.yaml", 3, false}},
		{"HostnameConfig.apiVersion", at{"v1alpha1", "base.yaml", 5, false}},
		{"HostnameConfig.kind", at{"HostnameConfig", "base.yaml", 6, false}},
		{"HostnameConfig.hostname", at{"w-01", "", 0, true}},
		{"ResolverConfig.apiVersion", at{"v1alpha1", "p.yaml", 1, false}},
		{"ResolverConfig.kind", at{"ResolverConfig", "p.yaml", 2, false}},
		{"ResolverConfig.nameservers[0].address", at{"10.0.0.1", "base.yaml", 12, false}},
		{"ResolverConfig.searchDomains.domains[0]", at{"lan", "p.yaml", 4, false}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d leaves, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		o := got[i]
		if o.Path != w.path || (at{o.Value, o.File, o.Line, o.Filled}) != w.at {
			t.Errorf("leaf %d: got %s %+v, want %s %+v", i, o.Path, at{o.Value, o.File, o.Line, o.Filled}, w.path, w.at)
		}
	}
}
