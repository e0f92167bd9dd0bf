package render

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/tinderbox-boot/tinderbox/internal/problem"
)

func parseOne(t testing.TB, text string) (any, bool) {
	t.Helper()
	docs, _, err := parseDocs([]byte(text))
	if err != nil || len(docs) != 1 {
		return nil, false
	}
	return docs[0], true
}

// hasList says whether v holds a list anywhere.
func hasList(v any) bool {
	switch v := v.(type) {
	case []any:
		return true
	case Map:
		for _, kv := range v {
			if hasList(kv.Value) {
				return true
			}
		}
	}
	return false
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := encodeDocs([]any{v})
	if err != nil {
		t.Fatalf("encode %#v: %v", v, err)
	}
	return b
}

// FuzzMerge checks properties of the strategic merge on any two YAML
// documents: an empty patch changes nothing; a patch of maps and scalars
// applied twice gives what it gives once; the output always encodes to
// YAML that parses back to the same output; the inputs are not modified.
func FuzzMerge(f *testing.F) {
	f.Add("machine:\n  type: worker\n  network:\n    interfaces:\n      - interface: eth0\n", "machine:\n  network:\n    hostname: a\n")
	f.Add("a: {b: 1, c: [1, 2]}\n", "a: {c: [3], $patch: delete}\n")
	f.Add("machine: {network: {interfaces: [{interface: eth0, vlans: [{vlanId: 1}]}]}}\n", "machine: {network: {interfaces: [{interface: eth0, vlans: [{vlanId: 1, mtu: 1}]}]}}\n")
	f.Add("x: 1\n", "x: {y: null}\n")
	f.Add("[1, 2]\n", "z: \"0x10\"\n")
	f.Fuzz(func(t *testing.T, base, patch string) {
		b, ok := parseOne(t, base)
		if !ok {
			return
		}
		p, ok := parseOne(t, patch)
		if !ok {
			return
		}
		before, beforeP := encode(t, b), encode(t, p)
		for _, empty := range []any{nil, Map{}} {
			got, err := Merge(b, empty)
			if err != nil {
				t.Fatalf("empty patch: %v", err)
			}
			if _, isMap := b.(Map); (isMap || empty == nil) && !bytes.Equal(encode(t, got), before) {
				t.Fatalf("empty patch %#v changed\n%s\nto\n%s", empty, before, encode(t, got))
			}
		}
		once, err := Merge(b, p)
		if err != nil {
			return
		}
		out := encode(t, once)
		back, ok := parseOne(t, string(out))
		if !ok {
			t.Fatalf("output does not parse:\n%s", out)
		}
		if again := encode(t, back); !bytes.Equal(again, out) {
			t.Fatalf("output changes on a round trip:\n%s\nthen\n%s", out, again)
		}
		if _, isMap := p.(Map); isMap && !hasList(p) {
			twice, err := Merge(once, p)
			if err != nil {
				t.Fatalf("second application: %v", err)
			}
			if got := encode(t, twice); !bytes.Equal(got, out) {
				t.Fatalf("patch not idempotent:\nonce\n%s\ntwice\n%s", out, got)
			}
		}
		if !bytes.Equal(encode(t, b), before) || !bytes.Equal(encode(t, p), beforeP) {
			t.Fatal("Merge modified its inputs")
		}
	})
}

func BenchmarkRender(b *testing.B) {
	in := loadCase(b, "testdata/golden/templates")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(in); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzRenderDocuments renders any base config and patch file, each of
// several documents, as plain YAML: a render never panics; it either fails
// with located problems or gives output that renders again to itself (the
// output as a base config with no patches is a fixed point, hostname and
// install image already filled); and the documents a kinded patch names
// exist in the output, merged or appended, unless the patch deletes them.
func FuzzRenderDocuments(f *testing.F) {
	f.Add("version: v1alpha1\nmachine:\n  type: worker\n---\napiVersion: v1alpha1\nkind: HostnameConfig\nauto: stable\n",
		"apiVersion: v1alpha1\nkind: LinkConfig\nname: lan\naddresses:\n  - address: 10.0.0.2/24\n---\nmachine:\n  install:\n    disk: /dev/sda\n")
	f.Add("version: v1alpha1\nmachine:\n  type: controlplane\n---\napiVersion: v1alpha1\nkind: ResolverConfig\nnameservers:\n  - address: 1.1.1.1\n",
		"apiVersion: v1alpha1\nkind: ResolverConfig\n$patch: delete\n")
	f.Add("version: v1alpha1\nmachine:\n  type: worker\n---\napiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: a\nconfigFiles:\n  - mountPath: /x\n    content: y\n",
		"apiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: a\nconfigFiles:\n  - mountPath: /x\n    content: z\n---\napiVersion: v1alpha1\nkind: ExtensionServiceConfig\nname: b\n")
	f.Add("version: v1alpha1\nmachine:\n  type: worker\n", "- op: add\n  path: /machine/nodeLabels\n  value: {a: b}\n")
	f.Fuzz(func(t *testing.T, base, patch string) {
		if len(base) > 4096 || len(patch) > 4096 {
			return
		}
		in := Input{
			Base:     File{Name: "base.yaml", Text: []byte("# tinderbox: raw\n" + base)},
			Patches:  []File{{Name: "patch.yaml", Text: []byte("# tinderbox: raw\n" + patch)}},
			Hostname: "node-1",
			Data:     Data{Talos: TalosData{Version: "v1.12.7"}},
		}
		out, err := Render(in)
		if err != nil {
			for _, e := range problem.Leaves(err) {
				var p *Problem
				if errors.As(e, &p) && p.File == "" {
					t.Fatalf("a problem without a file: %v", p)
				}
			}
			return
		}
		again, err := Render(Input{Base: File{Name: "out.yaml", Text: append([]byte("# tinderbox: raw\n"), out...)}, Hostname: "node-1", Data: in.Data})
		if err != nil {
			t.Fatalf("the output does not render again: %v\n%s", err, out)
		}
		if !bytes.Equal(again, out) {
			t.Fatalf("rendering the output again changes it:\n%s\nthen\n%s", out, again)
		}
		pdocs, _, err := parseDocs([]byte(patch))
		if err != nil {
			return
		}
		odocs, _, _ := parseDocs(out)
		for _, pd := range pdocs {
			m, ok := pd.(Map)
			if !ok || isDelete(m) {
				continue
			}
			kind, kinded := m.Get("kind")
			if !kinded {
				continue
			}
			if !slices.ContainsFunc(odocs, func(d any) bool { dm, ok := d.(Map); return ok && sameDoc(dm, m, kind) }) {
				t.Fatalf("the patch's %v document is not in the output:\n%s", kind, out)
			}
		}
	})
}
