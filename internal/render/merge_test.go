package render

import (
	"bytes"
	"testing"
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
